/* tkd_cortex_m.c - the parts of the bare-metal Cortex-M ports that do not depend on the chip
 * (see tkd_cortex_m.h): receive ring, SysTick counter, semihosting exit, board name, main().
 * tinykd/firmware/project.py copies it into every Makefile project beside the port.
 */
#include <stdint.h>

#include "tkd_app.h"
#include "tkd_board.h"
#include "tkd_cortex_m.h"
#include "tkd_port.h"

/* ------------------------------------------------------------------ receive ring */

#ifdef TKD_UART_RX_IRQ
volatile uint8_t tkd_rx_ring[TKD_RX_RING_BYTES];
volatile uint32_t tkd_rx_head;
volatile uint32_t tkd_rx_tail;

void tkd_cm_rx_start(void)
{
    tkd_rx_head = 0u;
    tkd_rx_tail = 0u;
    TKD_NVIC_ISER(TKD_RX_IRQ_WORD) = TKD_RX_IRQ_BIT;
}

/* The next byte, or -1 after sleeping until some interrupt came (the caller polls again). */
int tkd_port_uart_read_byte(void)
{
    int c;
    uint32_t tail;
    __asm volatile("cpsid i" ::: "memory");
    if (tkd_rx_tail == tkd_rx_head) {
        /* Sleep until an interrupt is pending: a sleeping guest lets QEMU deliver the next
         * byte at once instead of competing with a busy polling loop for the emulator's lock
         * (a faster link, and host CPU left for instances running side by side); on hardware
         * it costs nothing. With PRIMASK set, WFI still wakes on a pending interrupt, so a
         * byte arriving between the check and the WFI is not missed; it is taken when
         * interrupts are enabled again below. */
        __asm volatile("wfi" ::: "memory");
        __asm volatile("cpsie i" ::: "memory");
        return -1;
    }
    __asm volatile("cpsie i" ::: "memory");
    tail = tkd_rx_tail;
    c = tkd_rx_ring[tail & (TKD_RX_RING_BYTES - 1u)];
    tkd_rx_tail = tail + 1u;
    tkd_port_uart_rx_unmask();
    return c;
}
#endif

/* ------------------------------------------------------------------ counter */

#if defined(TKD_BOARD_COUNTER_SYSTICK) || defined(TKD_BOARD_COUNTER_SYSTICK_ICOUNT)
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

void tkd_cm_systick_start(void)
{
    systick_wraps = 0;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;
}

/* Ticks since tkd_cm_systick_start(): the wraps and the down-counting value, read again
 * if a wrap came in between. */
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

/* Start on a tick edge: under QEMU a SysTick tick is tens of instructions at shift=0 (40 on
 * mps2-an386, 62.5 on microbit-qemu), so starting at a random phase would add up to one tick
 * of jitter to every count. Waiting for the edge (a few instructions per poll) makes repeated
 * counts of the same work nearly always equal; the count's resolution stays one tick. */
void tkd_port_counter_start(void)
{
    uint32_t v0 = SYST_CVR;
    while (SYST_CVR == v0) {
    }
    counter_start_ticks = systick_ticks();
}

/* On hardware SysTick on the CPU clock counts CPU cycles. QEMU runs with -icount shift=0,
 * where one instruction takes 1 ns of virtual time, so there SysTick ticks measure executed
 * instructions (not cycles): instructions = ticks * 1e9 / TKD_SYSTICK_HZ. */
uint32_t tkd_port_counter_read(void)
{
    uint64_t count = systick_ticks() - counter_start_ticks;
#if defined(TKD_BOARD_COUNTER_SYSTICK_ICOUNT)
    count = count * 1000000000ull / (uint64_t)TKD_SYSTICK_HZ;
#endif
    return count > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)count;
}

uint8_t tkd_port_counter_kind(void)
{
#if defined(TKD_BOARD_COUNTER_SYSTICK_ICOUNT)
    return (uint8_t)TKD_COUNTER_INSTRUCTIONS;
#else
    return (uint8_t)TKD_COUNTER_CYCLES;
#endif
}
#endif /* SysTick counter */

/* ------------------------------------------------------------------ exit, board, main */

void tkd_cm_semihosting_exit(int code)
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
}

const char *tkd_port_board_name(void)
{
    return TKD_BOARD_NAME;
}

/* The board file's clock; a port that sets its clock up at run time (stm32f4: it may stay on
 * the internal oscillator) defines its own. */
__attribute__((weak)) uint32_t tkd_port_clock_hz(void)
{
    return (uint32_t)TKD_BOARD_CLOCK_HZ;
}

int main(void)
{
    tkd_app_run();
    return 0;
}
