/* tkd_port_qemu.c - tinykd port for the ARM MPS2/MPS3 boards as emulated by QEMU.
 *
 * Serial: CMSDK APB UART0. QEMU models a one-byte receive holding register (the host side
 * waits in the socket meanwhile). With TKD_UART_RX_IRQ defined, the receive interrupt moves
 * each byte into the ring of ../cortex-m/tkd_cortex_m.c and the main loop sleeps in WFI while
 * the ring is empty: a sleeping guest lets QEMU deliver the next byte at once instead of
 * competing with a busy polling loop for the emulator's lock, which makes the link faster and
 * frees host CPU for instances running side by side. Without it the UART is polled.
 * Counter: SysTick on the CPU clock (tkd_cortex_m.c). QEMU runs with -icount shift=0, where
 * one instruction takes 1 ns of virtual time, so SysTick ticks measure executed instructions
 * (not cycles): instructions = ticks * 1e9 / TKD_SYSTICK_HZ.
 * Exit: Arm semihosting SYS_EXIT_EXTENDED, so QEMU ends with the given status.
 */
#include <stdint.h>

#include "tkd_board.h"
#include "tkd_cortex_m.h"
#include "tkd_port.h"

#define UART_DATA           (*(volatile uint32_t *)(TKD_UART_BASE + 0x00u))
#define UART_STATE          (*(volatile uint32_t *)(TKD_UART_BASE + 0x04u))
#define UART_CTRL           (*(volatile uint32_t *)(TKD_UART_BASE + 0x08u))
#define UART_INTCLR         (*(volatile uint32_t *)(TKD_UART_BASE + 0x0Cu))
#define UART_BAUDDIV        (*(volatile uint32_t *)(TKD_UART_BASE + 0x10u))
#define UART_STATE_TX_FULL  0x1u
#define UART_STATE_RX_FULL  0x2u
#define UART_CTRL_TX_EN     0x1u
#define UART_CTRL_RX_EN     0x2u
#define UART_CTRL_RX_INT_EN 0x8u
#define UART_INT_RX         0x2u

#ifdef TKD_UART_RX_IRQ
void tkd_port_irq_handler(void)
{
    while (UART_STATE & UART_STATE_RX_FULL) {
        if (tkd_cm_rx_full()) {
            /* Full (only under a flood): leave the byte and its pending status, mask the
             * interrupt until the main loop has made room (unmasking re-raises it). */
            UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;
            return;
        }
        UART_INTCLR = UART_INT_RX; /* clear first: a byte arriving after the read re-raises */
        tkd_cm_rx_put((uint8_t)(UART_DATA & 0xFFu));
    }
}

void tkd_port_uart_rx_unmask(void)
{
    /* Receive interrupt on again: a byte already waiting raises it at once. */
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
}
#else
int tkd_port_uart_read_byte(void)
{
    if (UART_STATE & UART_STATE_RX_FULL) {
        return (int)(UART_DATA & 0xFFu);
    }
    return -1;
}
#endif

void tkd_port_init(void)
{
    UART_BAUDDIV = 16u; /* must be >= 16; the baud rate itself is not modelled */
#ifdef TKD_UART_RX_IRQ
    UART_INTCLR = UART_INT_RX;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    tkd_cm_rx_start();
#else
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;
#endif
    tkd_cm_systick_start();
}

void tkd_port_uart_write(const uint8_t *data, uint32_t len)
{
    uint32_t i;
    for (i = 0; i < len; i++) {
        while (UART_STATE & UART_STATE_TX_FULL) {
        }
        UART_DATA = data[i];
    }
}

int tkd_port_exit(int code)
{
    tkd_cm_semihosting_exit(code);
}
