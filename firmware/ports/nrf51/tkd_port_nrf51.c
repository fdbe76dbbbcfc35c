/* tkd_port_nrf51.c - tinykd port for the Nordic nRF51 (Cortex-M0), e.g. the BBC micro:bit v1,
 * written from the nRF51 Series Reference Manual (v3.0): UART0, CLOCK, GPIO, SysTick.
 *
 * Serial: UART0 at TKD_UART_BASE (0x40002000, NVIC line 2), 8N1 at TKD_BOARD_BAUD, on the pins
 * the board file names (micro:bit: TX P0.24, RX P0.25, wired to the DAPLink interface chip's
 * USB serial). The receiver holds a 6-byte FIFO and signals EVENTS_RXDRDY per byte; its
 * interrupt moves bytes into the ring of ../cortex-m/tkd_cortex_m.c and the main loop sleeps
 * in WFI while the ring is empty (see there for why this suits QEMU; on hardware it costs
 * nothing). RAM is 16 KB in all, so the micro:bit board files make the ring small
 * (TKD_RX_RING_BYTES 64): the main loop only decodes bytes while a frame arrives, far faster
 * than the link delivers them.
 * Clock: with TKD_NRF51_HFCLK_XTAL the 16 MHz crystal is started (with a timeout) so the
 * baud rate is crystal-accurate; the internal RC oscillator is +-2 %, enough for 8N1 but
 * not guaranteed. QEMU does not model the CLOCK block (reads as 0), so its board skips it.
 * Counter: SysTick on the CPU clock (the M0 has no DWT cycle counter), in tkd_cortex_m.c. On
 * hardware the ticks are CPU cycles; under QEMU -icount shift=0
 * (TKD_BOARD_COUNTER_SYSTICK_ICOUNT) a tick is 1e9 / TKD_SYSTICK_HZ instructions and the
 * port reports instructions.
 * Exit: Arm semihosting under QEMU only (TKD_NRF51_SEMIHOSTING); without a debugger a BKPT
 * would lock the core up, so on hardware tkd_port_exit() reports that it cannot exit.
 */
#include <stdint.h>

#include "tkd_board.h"
#include "tkd_cortex_m.h"
#include "tkd_port.h"

#ifndef TKD_NRF51_UART_TX_PIN
#define TKD_NRF51_UART_TX_PIN 24u /* micro:bit v1 */
#endif
#ifndef TKD_NRF51_UART_RX_PIN
#define TKD_NRF51_UART_RX_PIN 25u
#endif

#define REG(addr) (*(volatile uint32_t *)(addr))

/* UART0 */
#define UART_TASKS_STARTRX   REG(TKD_UART_BASE + 0x000u)
#define UART_TASKS_STARTTX   REG(TKD_UART_BASE + 0x008u)
#define UART_EVENTS_RXDRDY   REG(TKD_UART_BASE + 0x108u)
#define UART_EVENTS_TXDRDY   REG(TKD_UART_BASE + 0x11Cu)
#define UART_EVENTS_ERROR    REG(TKD_UART_BASE + 0x124u)
#define UART_INTENSET        REG(TKD_UART_BASE + 0x304u)
#define UART_INTENCLR        REG(TKD_UART_BASE + 0x308u)
#define UART_ERRORSRC        REG(TKD_UART_BASE + 0x480u)
#define UART_ENABLE          REG(TKD_UART_BASE + 0x500u)
#define UART_PSELRTS         REG(TKD_UART_BASE + 0x508u)
#define UART_PSELTXD         REG(TKD_UART_BASE + 0x50Cu)
#define UART_PSELCTS         REG(TKD_UART_BASE + 0x510u)
#define UART_PSELRXD         REG(TKD_UART_BASE + 0x514u)
#define UART_RXD             REG(TKD_UART_BASE + 0x518u)
#define UART_TXD             REG(TKD_UART_BASE + 0x51Cu)
#define UART_BAUDRATE        REG(TKD_UART_BASE + 0x524u)
#define UART_CONFIG          REG(TKD_UART_BASE + 0x56Cu)
#define UART_ENABLE_ON       4u
#define UART_INT_RXDRDY      (1u << 2)
#define UART_PSEL_DISCONNECT 0xFFFFFFFFu

/* GPIO (P0) */
#define GPIO_OUTSET         REG(0x50000508u)
#define GPIO_PIN_CNF(n)     REG(0x50000700u + 4u * (n))
#define GPIO_PIN_CNF_OUTPUT 0x3u /* DIR=output, input buffer disconnected */
#define GPIO_PIN_CNF_INPUT  0x0u /* DIR=input, input buffer connected, no pull */
#define GPIO_PIN_CNF_PULLUP (3u << 2)

/* CLOCK */
#define CLOCK_TASKS_HFCLKSTART  REG(0x40000000u)
#define CLOCK_EVENTS_HFCLKSTART REG(0x40000100u)

/* BAUDRATE register value for TKD_BOARD_BAUD, from the reference manual's table (the
 * manual lists rounded values for its fractional divider, so no formula). */
#if TKD_BOARD_BAUD == 9600
#define UART_BAUD_VALUE 0x00275000u
#elif TKD_BOARD_BAUD == 19200
#define UART_BAUD_VALUE 0x004EA000u
#elif TKD_BOARD_BAUD == 38400
#define UART_BAUD_VALUE 0x009D5000u
#elif TKD_BOARD_BAUD == 57600
#define UART_BAUD_VALUE 0x00EBF000u
#elif TKD_BOARD_BAUD == 115200
#define UART_BAUD_VALUE 0x01D7E000u
#elif TKD_BOARD_BAUD == 230400
#define UART_BAUD_VALUE 0x03AFB000u
#elif TKD_BOARD_BAUD == 460800
#define UART_BAUD_VALUE 0x075F7000u
#elif TKD_BOARD_BAUD == 921600
#define UART_BAUD_VALUE 0x0EBEDFA4u
#elif TKD_BOARD_BAUD == 1000000
#define UART_BAUD_VALUE 0x10000000u
#else
/* The table above has the standard rates from 9600 to 1000000 baud. */
#error "nRF51 port: [serial] baud in the board file is not a rate this port knows"
#endif

#if !defined(TKD_UART_RX_IRQ) ||                                                                   \
    !(defined(TKD_BOARD_COUNTER_SYSTICK) || defined(TKD_BOARD_COUNTER_SYSTICK_ICOUNT))
/* The board file's [uart] rx_irq (2 for UART0) and a SysTick [counter] kind. */
#error "nRF51 port: the board needs [uart] rx_irq and [counter] kind systick or systick-icount"
#endif

void tkd_port_irq_handler(void)
{
    if (UART_EVENTS_ERROR) {
        /* Overrun, framing or break: clear it; the protocol's CRC catches the damage. */
        UART_EVENTS_ERROR = 0u;
        UART_ERRORSRC = UART_ERRORSRC; /* write 1 to clear the bits that are set */
    }
    while (UART_EVENTS_RXDRDY) {
        if (tkd_cm_rx_full()) {
            /* Full: leave the byte in the UART (its FIFO, and QEMU's flow control, hold the
             * rest) and mask the interrupt until the main loop has made room. */
            UART_INTENCLR = UART_INT_RXDRDY;
            return;
        }
        /* Clear the event before reading RXD: the read moves the next FIFO byte into RXD and
         * raises RXDRDY again, which must not be lost. */
        UART_EVENTS_RXDRDY = 0u;
        tkd_cm_rx_put((uint8_t)(UART_RXD & 0xFFu));
    }
}

void tkd_port_uart_rx_unmask(void)
{
    UART_INTENSET = UART_INT_RXDRDY; /* re-raises a pending RXDRDY */
}

#if defined(TKD_NRF51_HFCLK_XTAL) && TKD_NRF51_HFCLK_XTAL
static void start_hfclk(void)
{
    /* The crystal starts in well under a millisecond; give up after ~10 ms (on the RC
     * oscillator, about 4 cycles per poll) and run on the RC clock rather than hang. */
    uint32_t n = 40000u;
    CLOCK_EVENTS_HFCLKSTART = 0u;
    CLOCK_TASKS_HFCLKSTART = 1u;
    while (CLOCK_EVENTS_HFCLKSTART == 0u && --n) {
    }
}
#endif

void tkd_port_init(void)
{
#if defined(TKD_NRF51_HFCLK_XTAL) && TKD_NRF51_HFCLK_XTAL
    start_hfclk();
#endif
    /* TXD idles high: drive it as an output before the UART takes it over; RXD is an input
     * with a pull-up so an unconnected line does not read as a stream of breaks. */
    GPIO_OUTSET = 1u << TKD_NRF51_UART_TX_PIN;
    GPIO_PIN_CNF(TKD_NRF51_UART_TX_PIN) = GPIO_PIN_CNF_OUTPUT;
    GPIO_PIN_CNF(TKD_NRF51_UART_RX_PIN) = GPIO_PIN_CNF_INPUT | GPIO_PIN_CNF_PULLUP;

    UART_ENABLE = UART_ENABLE_ON; /* QEMU ignores every other UART register until enabled */
    UART_PSELTXD = TKD_NRF51_UART_TX_PIN;
    UART_PSELRXD = TKD_NRF51_UART_RX_PIN;
    UART_PSELRTS = UART_PSEL_DISCONNECT;
    UART_PSELCTS = UART_PSEL_DISCONNECT;
    UART_CONFIG = 0u; /* no parity, no flow control */
    UART_BAUDRATE = UART_BAUD_VALUE;
    UART_EVENTS_RXDRDY = 0u;
    UART_EVENTS_TXDRDY = 0u;
    UART_EVENTS_ERROR = 0u;
    UART_TASKS_STARTTX = 1u;
    UART_TASKS_STARTRX = 1u;
    UART_INTENSET = UART_INT_RXDRDY;
    tkd_cm_rx_start();

    tkd_cm_systick_start();
}

void tkd_port_uart_write(const uint8_t *data, uint32_t len)
{
    uint32_t i;
    for (i = 0; i < len; i++) {
        /* One byte in flight: TXDRDY says it has left TXD (QEMU drops a byte written while
         * the previous one is pending, the hardware overwrites it). */
        UART_TXD = data[i];
        while (UART_EVENTS_TXDRDY == 0u) {
        }
        UART_EVENTS_TXDRDY = 0u;
    }
}

int tkd_port_exit(int code)
{
#if defined(TKD_NRF51_SEMIHOSTING) && TKD_NRF51_SEMIHOSTING
    tkd_cm_semihosting_exit(code);
#else
    (void)code;
    return -1; /* without a debugger a BKPT would lock the core up */
#endif
}
