/* tkd_port_qemu.c - tinykd port for the ARM MPS2/MPS3 boards as emulated by QEMU.
 *
 * Serial: CMSDK APB UART0. QEMU models a one-byte receive holding register (the host side
 * waits in the socket meanwhile). With TKD_UART_RX_IRQ defined, the receive interrupt moves
 * each byte into a ring buffer and the main loop sleeps in WFI while the ring is empty: a
 * sleeping guest lets QEMU deliver the next byte at once instead of competing with a busy
 * polling loop for the emulator's lock, which makes the link faster and frees host CPU for
 * instances running side by side. Without it the UART is polled.
 * Counter: SysTick on the CPU clock. QEMU runs with -icount shift=0, where one instruction
 * takes 1 ns of virtual time, so SysTick ticks measure executed instructions (not cycles):
 * instructions = ticks * 1e9 / TKD_SYSTICK_HZ. A 24-bit SysTick wraps; its interrupt
 * counts the wraps.
 * Exit: Arm semihosting SYS_EXIT_EXTENDED, so QEMU ends with the given status.
 */
#include <stdint.h>

#include "tkd_app.h"
#include "tkd_board.h"
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

#define NVIC_ISER(n) (*(volatile uint32_t *)(0xE000E100u + 4u * (n)))

#define SYST_CSR           (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR           (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR           (*(volatile uint32_t *)0xE000E018u)
#define SYST_CSR_ENABLE    0x1u
#define SYST_CSR_TICKINT   0x2u
#define SYST_CSR_CLKSOURCE 0x4u /* processor clock */
#define SYST_RELOAD        0x00FFFFFFu

static volatile uint32_t systick_wraps;
static uint64_t counter_start_ticks;

void tkd_systick_handler(void)
{
    systick_wraps++;
}

static uint64_t systick_ticks(void)
{
    uint32_t w1, w2, v;
    do {
        w1 = systick_wraps;
        v = SYST_CVR;
        w2 = systick_wraps;
    } while (w1 != w2);
    return (uint64_t)w1 * (SYST_RELOAD + 1u) + (uint64_t)(SYST_RELOAD - v);
}

#ifdef TKD_UART_RX_IRQ
#define RX_RING_BYTES 2048u /* power of two; > one frame (the host waits for each reply) */
static volatile uint8_t rx_ring[RX_RING_BYTES];
static volatile uint32_t rx_head; /* written by the interrupt */
static volatile uint32_t rx_tail; /* written by the main loop */

void tkd_port_irq_handler(void)
{
    while (UART_STATE & UART_STATE_RX_FULL) {
        uint32_t head = rx_head;
        if (head - rx_tail >= RX_RING_BYTES) {
            /* Full (only under a flood): leave the byte and its pending status, mask the
             * interrupt until the main loop has made room (unmasking re-raises it). */
            UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;
            return;
        }
        UART_INTCLR = UART_INT_RX; /* clear first: a byte arriving after the read re-raises */
        rx_ring[head & (RX_RING_BYTES - 1u)] = (uint8_t)(UART_DATA & 0xFFu);
        rx_head = head + 1u;
    }
}

int tkd_port_uart_read_byte(void)
{
    int c;
    uint32_t tail;
    __asm volatile("cpsid i" ::: "memory");
    if (rx_tail == rx_head) {
        /* Sleep until an interrupt is pending. With PRIMASK set, WFI still wakes on a
         * pending interrupt, so a byte arriving between the check and the WFI is not missed;
         * it is taken when interrupts are enabled again below. */
        __asm volatile("wfi" ::: "memory");
        __asm volatile("cpsie i" ::: "memory");
        return -1;
    }
    __asm volatile("cpsie i" ::: "memory");
    tail = rx_tail;
    c = rx_ring[tail & (RX_RING_BYTES - 1u)];
    rx_tail = tail + 1u;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN; /* room again */
    return c;
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
    rx_head = 0u;
    rx_tail = 0u;
    UART_INTCLR = UART_INT_RX;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISER((uint32_t)TKD_UART_RX_IRQ / 32u) = 1u << ((uint32_t)TKD_UART_RX_IRQ % 32u);
#else
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;
#endif

    systick_wraps = 0;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;
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

/* Start on a tick edge: a SysTick tick is 25-50 instructions at shift=0, so starting at a
 * random phase would add up to one tick of jitter to every count. Waiting for the edge
 * (a few instructions per poll) makes repeated counts of the same work nearly always equal;
 * the count's resolution stays one tick (1e9 / TKD_SYSTICK_HZ instructions). */
void tkd_port_counter_start(void)
{
    uint32_t v0 = SYST_CVR;
    while (SYST_CVR == v0) {
    }
    counter_start_ticks = systick_ticks();
}

uint32_t tkd_port_counter_read(void)
{
    uint64_t ticks = systick_ticks() - counter_start_ticks;
    uint64_t instr = ticks * 1000000000ull / (uint64_t)TKD_SYSTICK_HZ;
    return instr > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)instr;
}

uint8_t tkd_port_counter_kind(void)
{
    return (uint8_t)TKD_COUNTER_INSTRUCTIONS;
}

const char *tkd_port_board_name(void)
{
    return TKD_BOARD_NAME;
}

uint32_t tkd_port_clock_hz(void)
{
    return (uint32_t)TKD_BOARD_CLOCK_HZ;
}

int tkd_port_exit(int code)
{
    /* SYS_EXIT_EXTENDED (0x20) takes a pointer to {reason, subcode};
     * reason 0x20026 is ADP_Stopped_ApplicationExit. */
    volatile uint32_t block[2];
    register uint32_t r0 __asm("r0") = 0x20u;
    register volatile uint32_t *r1 __asm("r1") = block;
    block[0] = 0x20026u;
    block[1] = (uint32_t)code;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
    return 0;
}

int main(void)
{
    tkd_app_run();
    return 0;
}
