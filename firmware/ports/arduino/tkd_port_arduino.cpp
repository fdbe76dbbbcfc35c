// tkd_port_arduino.cpp - tinykd port for Arduino cores: the Mbed OS cores of the Nano 33 BLE,
// Nano RP2040 Connect, Pico and Portenta H7, and Seeed's core of the XIAO nRF52840 Sense.
//
// Serial: the core's Serial object (USB CDC on these boards; the baud rate only matters on a
// UART). Two things about Mbed's USB CDC shape the writes:
//  * every Serial.write() blocks until its USB transfer is done, so the app's small writes
//    (a delimiter, a COBS code, a run of bytes) would cost one transfer each: a RESULT frame
//    several, a 784-byte LOADED echo hundreds. We collect each frame and write it at once;
//  * while the host has the port closed (DTR low) writes are dropped without a word, and
//    write() returns 0. A frame is then held until the host opens the port and sent whole.
// Counter (what tkd_board.h names, see boards/<board>.toml [counter]):
//  * dwt (Cortex-M4/M7/M33): DWT->CYCCNT, CPU clock cycles;
//  * systick (Cortex-M0/M0+, no DWT cycle counter): micros() scaled to cycles at the board's
//    clock, not SysTick itself: Mbed OS's RTOS runs its kernel tick on SysTick (reprogramming it
//    breaks delay() and USB timeouts), its 24-bit count wraps every 126 ms at 133 MHz (shorter
//    than a larger model's inference) and counting wraps needs its interrupt, which the RTOS
//    owns. micros() reads the chip's 1 MHz timer: 1 us is 133 cycles on an RP2040, under 0.1 %
//    of a millisecond-long inference.
#include <Arduino.h>
#include <stdint.h>

#include "tkd_board.h"
#include "tkd_port.h"
#include "tkd_protocol.h"

#if defined(TKD_BOARD_COUNTER_SYSTICK_ICOUNT)
#error "counter kind systick-icount counts QEMU instructions; an Arduino board uses dwt or systick"
#elif defined(TKD_BOARD_COUNTER_SYSTICK)
#define TKD_ARDUINO_MICROS_ONLY 1
#else // dwt (also a tkd_board.h from before counter kinds: every such board had a DWT)
#define TKD_ARDUINO_MICROS_ONLY 0
#endif

// A memory-mapped register. The host stand-in core (standin/Arduino.h) maps these onto an
// array so this file runs on a PC.
#ifndef TKD_PORT_REG
#define TKD_PORT_REG(addr) (*(volatile uint32_t *)(addr))
#endif

// Debug registers of the ARMv7-M/ARMv8-M architecture (written out here so the port does
// not depend on which CMSIS headers a core ships).
#define TKD_DEMCR              TKD_PORT_REG(0xE000EDFCu)
#define TKD_DEMCR_TRCENA       (1u << 24)
#define TKD_DWT_CTRL           TKD_PORT_REG(0xE0001000u)
#define TKD_DWT_CYCCNT         TKD_PORT_REG(0xE0001004u)
#define TKD_DWT_LAR            TKD_PORT_REG(0xE0001FB0u)
#define TKD_DWT_LAR_KEY        0xC5ACCE55u
#define TKD_DWT_CTRL_CYCCNTENA 1u
#define TKD_DWT_CTRL_NOCYCCNT  (1u << 25)

// One frame as the app sends it: 0x00, COBS bytes (never 0x00), 0x00.
static uint8_t tx_frame[TKD_MAX_ENCODED + 2u];
static uint32_t tx_len;

static uint8_t use_micros = TKD_ARDUINO_MICROS_ONLY;
static uint32_t counter_start;

static void send_frame(void)
{
    // Wait for the host to have the port open (DTR), then write the frame in one call. Mbed's
    // write() returns 1 (true) once the whole buffer went out and 0 when the host closed the
    // port meanwhile; other cores return the byte count. Nothing sent: wait again and send the
    // whole frame (a part that did go out is ended by this frame's leading delimiter, so the
    // host's decoder drops it).
    do {
        while (!Serial) {
            delay(1); // lets the core's USB thread run while we wait
        }
    } while (Serial.write(tx_frame, tx_len) == 0u);
    tx_len = 0;
}

extern "C" void tkd_port_init(void)
{
    Serial.begin(TKD_BOARD_BAUD);
    tx_len = 0;
#if !TKD_ARDUINO_MICROS_ONLY
    TKD_DWT_LAR = TKD_DWT_LAR_KEY; // Cortex-M7 (Portenta H7) locks the DWT; elsewhere ignored
    TKD_DEMCR |= TKD_DEMCR_TRCENA;
    if ((TKD_DWT_CTRL & TKD_DWT_CTRL_NOCYCCNT) == 0u) {
        uint32_t before;
        TKD_DWT_CYCCNT = 0u;
        TKD_DWT_CTRL |= TKD_DWT_CTRL_CYCCNTENA;
        before = TKD_DWT_CYCCNT;
        delayMicroseconds(2);
        use_micros = TKD_DWT_CYCCNT == before; // a counter that does not run is no counter
    } else {
        use_micros = 1u; // an implementation without the cycle counter
    }
#endif
}

extern "C" int tkd_port_uart_read_byte(void)
{
    return Serial.available() > 0 ? Serial.read() : -1;
}

extern "C" void tkd_port_uart_write(const uint8_t *data, uint32_t len)
{
    uint32_t i;
    for (i = 0; i < len; i++) {
        if (tx_len == sizeof tx_frame) {
            send_frame(); // longer than any frame the app builds: never happens, but never overflow
        }
        tx_frame[tx_len++] = data[i];
        if (data[i] == 0u && tx_len > 1u) {
            send_frame(); // a delimiter after frame bytes closes the frame
        }
    }
}

static uint32_t counter_now(void)
{
    if (use_micros) {
        return (uint32_t)micros();
    }
    return TKD_DWT_CYCCNT;
}

extern "C" void tkd_port_counter_start(void)
{
    counter_start = counter_now();
}

extern "C" uint32_t tkd_port_counter_read(void)
{
    uint32_t elapsed = counter_now() - counter_start; // wraps correctly for runs under 2^32 ticks
    if (use_micros) {
        return (uint32_t)(((uint64_t)elapsed * TKD_BOARD_CLOCK_HZ) / 1000000u);
    }
    return elapsed;
}

extern "C" uint8_t tkd_port_counter_kind(void)
{
    return (uint8_t)TKD_COUNTER_CYCLES;
}

extern "C" const char *tkd_port_board_name(void)
{
    return TKD_BOARD_NAME;
}

extern "C" uint32_t tkd_port_clock_hz(void)
{
    return (uint32_t)TKD_BOARD_CLOCK_HZ;
}

extern "C" int tkd_port_exit(int code)
{
    (void)code;
    return -1; // a real board keeps running
}
