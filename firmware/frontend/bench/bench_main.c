/*
 * Instruction count of the KWS frontend on QEMU mps2-an386 (Cortex-M4), run by
 * frontend_cost.py beside this file. Bare metal: no port, no runtime, only the frontend.
 *
 * QEMU runs with -icount shift=0: one guest instruction is 1 ns of virtual time, and SysTick
 * on the 25 MHz processor clock ticks once every 40 instructions, so
 * instructions = 40 * ticks (resolution one tick; every count starts on a tick edge, as the
 * firmware's port does).
 *
 * Per clip it prints one line "clip <index> <instructions> <490 feature bytes in hex>".
 * Built with -DTKD_FRONTEND_PROFILE, tkd_frontend.c calls tkd_frontend_profile_mark(stage)
 * at the end of every stage; the ticks since the previous mark go to that stage, and a last
 * line "stages <instructions per stage...>" gives the sums over all clips, the cost of the
 * marks themselves (measured here) removed.
 */
#include <stdint.h>

#include "bench_audio.h" /* N_CLIPS, bench_audio[N_CLIPS][16000], written by frontend_cost.py */
#include "tkd_frontend.h"

#define SYST_CSR              (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR              (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR              (*(volatile uint32_t *)0xE000E018u)
#define TICK_MASK             0x00FFFFFFu
#define INSTRUCTIONS_PER_TICK 40u /* 1e9 ns / 25 MHz */
#define MAX_STAGES            8

extern uint32_t _etext, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

void reset_handler(void)
{
    uint32_t *s = &_etext, *d = &_sdata;
    while (d < &_edata) {
        *d++ = *s++;
    }
    for (d = &_sbss; d < &_ebss; d++) {
        *d = 0;
    }
    main();
    for (;;) {
    }
}

__attribute__((section(".vectors"),
               used)) static const void *vectors[2] = { &_estack, (void *)reset_handler };

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void put(const char *s)
{
    semihost(0x04, s); /* SYS_WRITE0 */
}

static char *put_u32(char *p, uint32_t v)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        *p++ = tmp[--n];
    }
    return p;
}

static uint32_t start_on_edge(void)
{
    uint32_t v0 = SYST_CVR, v;
    do {
        v = SYST_CVR;
    } while (v == v0);
    return v;
}

static uint32_t ticks_since(uint32_t start) /* SysTick counts down */
{
    return (start - SYST_CVR) & TICK_MASK;
}

static uint32_t stage_ticks[MAX_STAGES];
static uint32_t mark_last;
static uint32_t mark_calls;

void tkd_frontend_profile_mark(int stage);
void tkd_frontend_profile_mark(int stage)
{
    uint32_t now = SYST_CVR;
    stage_ticks[stage] += (mark_last - now) & TICK_MASK;
    mark_last = now;
    mark_calls++;
}

static tkd_frontend_scratch scratch;
static int8_t feats[TKD_FRONTEND_NUM_FEATURES];
static char line[64 + 2 * TKD_FRONTEND_NUM_FEATURES];

int main(void)
{
    static const char hex[] = "0123456789abcdef";
    static const uint32_t exit_args[2] = { 0x20026, 0 }; /* ADP_Stopped_ApplicationExit, 0 */
    uint32_t c, i, t0, ticks, overhead_ticks, calls;
    char *p;

    SYST_RVR = TICK_MASK;
    SYST_CVR = 0u;
    SYST_CSR = 0x5u; /* enable, processor clock, no interrupt */

    /* Cost of the profiling marks alone: 1024 back to back. */
    t0 = start_on_edge();
    mark_last = SYST_CVR;
    for (i = 0; i < 1024u; i++) {
        tkd_frontend_profile_mark(MAX_STAGES - 1);
    }
    overhead_ticks = ticks_since(t0);
    for (i = 0; i < MAX_STAGES; i++) {
        stage_ticks[i] = 0u;
    }
    mark_calls = 0u;

    for (c = 0; c < N_CLIPS; c++) {
        t0 = start_on_edge();
        mark_last = t0;
        tkd_frontend_run(bench_audio[c], feats, &scratch);
        ticks = ticks_since(t0);
        p = line;
        p = put_u32(p, c);
        *p++ = ' ';
        p = put_u32(p, ticks * INSTRUCTIONS_PER_TICK);
        *p++ = ' ';
        for (i = 0; i < TKD_FRONTEND_NUM_FEATURES; i++) {
            *p++ = hex[(uint8_t)feats[i] >> 4];
            *p++ = hex[(uint8_t)feats[i] & 15u];
        }
        *p++ = '\n';
        *p = 0;
        put("clip ");
        put(line);
    }
    calls = mark_calls;
    p = line;
    p = put_u32(p, calls);
    for (i = 0; i + 1u < MAX_STAGES; i++) {
        /* each stage had calls / stages marks; subtract their measured cost */
        *p++ = ' ';
        p = put_u32(p, stage_ticks[i] * INSTRUCTIONS_PER_TICK);
    }
    *p++ = ' ';
    p = put_u32(p, overhead_ticks * INSTRUCTIONS_PER_TICK / 1024u);
    *p++ = '\n';
    *p = 0;
    put("stages ");
    put(line);
    semihost(0x20, exit_args); /* SYS_EXIT_EXTENDED */
    return 0;
}
