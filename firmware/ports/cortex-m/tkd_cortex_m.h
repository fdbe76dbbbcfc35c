/* tkd_cortex_m.h - what the bare-metal Cortex-M ports (firmware/ports/qemu-mps, stm32f4,
 * nrf51) share; each port keeps only its chip's registers: UART set-up, byte in and out,
 * masking its receive interrupt, clocks.
 *
 * Receive ring (boards with a [uart] rx_irq): the port's receive interrupt
 * (tkd_port_irq_handler) moves each byte into a ring of TKD_RX_RING_BYTES;
 * tkd_port_uart_read_byte() hands them to the main loop and sleeps in WFI while the ring is
 * empty. The interrupt alone writes the head, the main loop alone the tail, so neither needs
 * a lock. When the ring is full the port masks its interrupt (the byte stays in the UART);
 * tkd_port_uart_rx_unmask() undoes that after each byte taken.
 * Counter: SysTick on the CPU clock, its 24-bit wraps counted by tkd_systick_handler; with a
 * board counter of kind systick or systick-icount, tkd_cortex_m.c is the port's counter.
 * Exit: Arm semihosting SYS_EXIT_EXTENDED, for the ports that run under QEMU.
 *
 * Only ARMv6-M instructions (cpsid, cpsie, wfi, bkpt) in here: the Cortex-M0 ports use it too.
 */
#ifndef TKD_CORTEX_M_H
#define TKD_CORTEX_M_H

#include <stdint.h>

#include "tkd_board.h"

/* The port's receive interrupt: every device line of the vector table goes to it. */
void tkd_port_irq_handler(void);

/* NVIC set-enable / clear-enable registers, 32 lines each. */
#define TKD_NVIC_ISER(n) (*(volatile uint32_t *)(0xE000E100u + 4u * (n)))
#define TKD_NVIC_ICER(n) (*(volatile uint32_t *)(0xE000E180u + 4u * (n)))

/* ------------------------------------------------------------------ receive ring */

#ifdef TKD_UART_RX_IRQ
/* Bytes the ring holds: more than one frame (the host waits for each reply). A board with
 * little RAM sets it smaller in its [defines] (the micro:bit: 64). */
#ifndef TKD_RX_RING_BYTES
#define TKD_RX_RING_BYTES 2048u
#endif
#if (TKD_RX_RING_BYTES) == 0 || ((TKD_RX_RING_BYTES) & ((TKD_RX_RING_BYTES) - 1u)) != 0
/* The indexes run freely and are masked, which needs a power of two. */
#error "TKD_RX_RING_BYTES must be a power of two."
#endif

#define TKD_RX_IRQ_WORD ((uint32_t)TKD_UART_RX_IRQ / 32u)
#define TKD_RX_IRQ_BIT  (1u << ((uint32_t)TKD_UART_RX_IRQ % 32u))

extern volatile uint8_t tkd_rx_ring[TKD_RX_RING_BYTES];
extern volatile uint32_t tkd_rx_head; /* written by the interrupt */
extern volatile uint32_t tkd_rx_tail; /* written by the main loop */

/* In the receive interrupt: no room for another byte (only under a flood). */
static inline int tkd_cm_rx_full(void)
{
    return tkd_rx_head - tkd_rx_tail >= TKD_RX_RING_BYTES;
}

/* In the receive interrupt, after tkd_cm_rx_full() said there is room. */
static inline void tkd_cm_rx_put(uint8_t byte)
{
    uint32_t head = tkd_rx_head;
    tkd_rx_ring[head & (TKD_RX_RING_BYTES - 1u)] = byte;
    tkd_rx_head = head + 1u;
}

/* Empty the ring and enable the receive line in the NVIC: the last step of the port's UART
 * set-up, once the UART raises its interrupt for received bytes. */
void tkd_cm_rx_start(void);

/* Defined by the port: the ring has room again, let the receive interrupt in (a pending
 * byte then raises it at once). Called after each byte tkd_port_uart_read_byte() takes. */
void tkd_port_uart_rx_unmask(void);
#endif

/* ------------------------------------------------------------------ counter, exit */

/* SysTick on the processor clock, full 24-bit reload, wrap interrupt on. */
void tkd_cm_systick_start(void);

/* Ends QEMU (or a debugger session) with `code` as the exit status. Only under semihosting:
 * without a debugger a BKPT escalates to a HardFault (and locks up a Cortex-M0). */
__attribute__((noreturn)) void tkd_cm_semihosting_exit(int code);

#endif /* TKD_CORTEX_M_H */
