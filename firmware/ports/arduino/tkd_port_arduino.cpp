// tkd_port_arduino.cpp - tinykd port for Arduino cores with a Cortex-M4/M7/M33 CPU.
// Serial: the core's Serial object (USB CDC on the Nano 33 BLE; the baud rate is ignored
// by USB but kept for UART boards). Counter: DWT->CYCCNT, i.e. CPU clock cycles.
#include <Arduino.h>
#include <stdint.h>

#include "tkd_board.h"
#include "tkd_port.h"

// Debug registers of the ARMv7-M/ARMv8-M architecture (written out here so the port does
// not depend on which CMSIS headers a core ships).
#define TKD_DEMCR              (*(volatile uint32_t *)0xE000EDFCu)
#define TKD_DEMCR_TRCENA       (1u << 24)
#define TKD_DWT_CTRL           (*(volatile uint32_t *)0xE0001000u)
#define TKD_DWT_CYCCNT         (*(volatile uint32_t *)0xE0001004u)
#define TKD_DWT_CTRL_CYCCNTENA 1u

static uint32_t counter_start;

extern "C" void tkd_port_init(void)
{
    Serial.begin(TKD_BOARD_BAUD);
    while (!Serial) {
        // wait for the host to open the port (USB CDC); the host then PINGs
    }
    TKD_DEMCR |= TKD_DEMCR_TRCENA;
    TKD_DWT_CYCCNT = 0u;
    TKD_DWT_CTRL |= TKD_DWT_CTRL_CYCCNTENA;
}

extern "C" int tkd_port_uart_read_byte(void)
{
    return Serial.available() > 0 ? Serial.read() : -1;
}

extern "C" void tkd_port_uart_write(const uint8_t *data, uint32_t len)
{
    Serial.write(data, len);
}

extern "C" void tkd_port_counter_start(void)
{
    counter_start = TKD_DWT_CYCCNT;
}

extern "C" uint32_t tkd_port_counter_read(void)
{
    return TKD_DWT_CYCCNT - counter_start; // wraps correctly for runs under 2^32 cycles
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
