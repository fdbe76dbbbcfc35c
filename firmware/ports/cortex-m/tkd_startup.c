/* tkd_startup.c - minimal Cortex-M start-up for bare-metal tinykd images (ARMv6-M, ARMv7-M,
 * ARMv8-M).
 *
 * Vector table, a reset handler that turns on the FPU (CPACR CP10/CP11 full access) before
 * any C code can touch a floating-point register when the image is built for one, .data copy
 * and .bss clear, then main(). Faults end the program through tkd_port_exit() so an emulator
 * does not hang. On ARMv6-M (Cortex-M0/M0+) the table slots of the v7-M configurable faults
 * and DebugMonitor are reserved; the core never takes them, so filling them is harmless.
 */
#include <stdint.h>

#include "tkd_board.h"
#include "tkd_port.h"

/* Device interrupt lines in the table (the board header sets it to the highest line the
 * port uses + 1); all of them go to tkd_port_irq_handler(). */
#ifndef TKD_IRQ_VECTORS
#define TKD_IRQ_VECTORS 0
#endif

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);
void tkd_systick_handler(void);
void tkd_port_irq_handler(void);

void Reset_Handler(void);
__attribute__((noreturn)) void tkd_reset_c(void);
static void tkd_fault_handler(void);
static void tkd_default_handler(void);

typedef void (*tkd_vector_t)(void);

/* 16 system exceptions, then TKD_IRQ_VECTORS device interrupts. The table sits at the start
 * of the code region, which is aligned enough for VTOR at its reset value. */
__attribute__((section(".vectors"), used))
const tkd_vector_t tkd_vector_table[16 + TKD_IRQ_VECTORS] = {
    (tkd_vector_t)(uintptr_t)&_estack, /* 0: initial main stack pointer */
    Reset_Handler,                     /* 1: reset */
    tkd_default_handler,               /* 2: NMI */
    tkd_fault_handler,                 /* 3: HardFault */
    tkd_fault_handler,                 /* 4: MemManage */
    tkd_fault_handler,                 /* 5: BusFault */
    tkd_fault_handler,                 /* 6: UsageFault */
    tkd_fault_handler,                 /* 7: SecureFault (ARMv8-M) */
    0,
    0,
    0,                   /* 8-10: reserved */
    tkd_default_handler, /* 11: SVCall */
    tkd_default_handler, /* 12: DebugMonitor */
    0,                   /* 13: reserved */
    tkd_default_handler, /* 14: PendSV */
    tkd_systick_handler, /* 15: SysTick */
#if TKD_IRQ_VECTORS > 0
    [16 ...(16 + TKD_IRQ_VECTORS - 1)] = tkd_port_irq_handler,
#endif
};

#if defined(__ARM_FP)
/* Built for an FPU (hard or softfp float ABI: the compiler may use FP registers either way).
 * Naked so that no compiler-generated code runs before the FPU is enabled. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm volatile("ldr r0, =0xE000ED88      \n" /* CPACR */
                   "ldr r1, [r0]             \n"
                   "orr r1, r1, #0x00F00000  \n" /* CP10, CP11: full access */
                   "str r1, [r0]             \n"
                   "dsb                      \n"
                   "isb                      \n"
                   "b tkd_reset_c            \n"
                   ".ltorg                   \n");
}
#else
/* No FPU in the build (Cortex-M0/M0+/M3, or a soft-float M4): nothing to enable, and the
 * Thumb-2 sequence above would not even assemble for ARMv6-M. Plain C is safe here: the
 * stack pointer is already loaded from vector 0. */
__attribute__((noreturn)) void Reset_Handler(void)
{
    tkd_reset_c();
}
#endif

__attribute__((noreturn)) void tkd_reset_c(void)
{
    uint32_t *src = &_sidata;
    uint32_t *dst = &_sdata;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; dst++) {
        *dst = 0u;
    }
    (void)main();
    tkd_port_exit(0);
    for (;;) {
    }
}

__attribute__((weak)) void tkd_systick_handler(void) {}

__attribute__((weak)) void tkd_port_irq_handler(void) {}

static void tkd_fault_handler(void)
{
    (void)tkd_port_exit(0x7F);
    for (;;) {
    }
}

static void tkd_default_handler(void)
{
    for (;;) {
    }
}
