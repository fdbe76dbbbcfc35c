/* tkd_port_stm32f4.c - tinykd port for STM32F4 microcontrollers, written against the
 * reference manuals' registers (RM0383 STM32F411, RM0390 STM32F446, RM0090 STM32F405).
 *
 * One source for the real boards (Nucleo-64: USART2 on PA2/PA3, wired to the ST-LINK's
 * virtual COM port) and for QEMU's netduinoplus2 (an STM32F405 whose first -serial is
 * USART1). Every instance choice - which USART, its clock-enable bit, its pins, whether to
 * program the clock tree, whether semihosting is there - comes from the board file's
 * [defines] through tkd_board.h; nothing is guessed at run time.
 *
 * Clocks (TKD_STM32_CLOCK_SETUP 1, hardware): HSI (16 MHz) -> PLL -> SYSCLK at the board's
 * clock, with the voltage scale, flash wait states and bus prescalers that clock needs. Every
 * wait for a ready flag has a time limit; if one runs out the chip stays on HSI and the port
 * reports 16 MHz (the link still works, the latency is honest). QEMU (TKD_STM32_CLOCK_SETUP 0)
 * does not model RCC, flash interface or PWR (reads are 0), so there the clock tree is left
 * alone and the board file's clock is the one QEMU models.
 * Serial: the USART's receive interrupt moves each byte into the ring of
 * ../cortex-m/tkd_cortex_m.c; the main loop sleeps in WFI while the ring is empty (in QEMU a
 * sleeping guest gets the next byte at once).
 * Counter: DWT->CYCCNT (CPU cycles) on hardware; under QEMU, which does not model the DWT,
 * SysTick on the CPU clock with -icount shift=0 (instructions, tkd_cortex_m.c).
 * Exit: semihosting under QEMU; on hardware tkd_port_exit() returns -1 (a BKPT without a
 * debugger attached would escalate to a HardFault).
 */
#include <stdint.h>

#include "tkd_board.h"
#include "tkd_cortex_m.h"
#include "tkd_port.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* ---- defaults for what a board file may leave out */
#ifndef TKD_STM32_CLOCK_SETUP
#define TKD_STM32_CLOCK_SETUP 0
#endif
#ifndef TKD_STM32_SEMIHOSTING
#define TKD_STM32_SEMIHOSTING 0
#endif
#ifndef TKD_STM32_OVERDRIVE
#define TKD_STM32_OVERDRIVE 0
#endif
#ifndef TKD_STM32_APB1_DIV
#define TKD_STM32_APB1_DIV 1
#endif
#ifndef TKD_STM32_APB2_DIV
#define TKD_STM32_APB2_DIV 1
#endif
#if !defined(TKD_STM32_UART_APB) || !defined(TKD_STM32_UART_RCC_BIT) ||                            \
    !defined(TKD_STM32_UART_GPIO_BASE) || !defined(TKD_STM32_UART_GPIO_RCC_BIT) ||                 \
    !defined(TKD_STM32_UART_TX_PIN) || !defined(TKD_STM32_UART_RX_PIN) ||                          \
    !defined(TKD_STM32_UART_AF) || !defined(TKD_UART_BASE)
/* The board file's [defines] name the USART instance, its pins and alternate function. */
#error "stm32f4 port: the board file must define the USART (TKD_STM32_UART_*)."
#endif

/* ---- RCC (reset and clock control), 0x40023800 */
#define RCC_BASE           0x40023800u
#define RCC_CR             REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR        REG(RCC_BASE + 0x04u)
#define RCC_CFGR           REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR        REG(RCC_BASE + 0x30u)
#define RCC_APB1ENR        REG(RCC_BASE + 0x40u)
#define RCC_APB2ENR        REG(RCC_BASE + 0x44u)
#define RCC_CR_HSION       (1u << 0)
#define RCC_CR_HSIRDY      (1u << 1)
#define RCC_CR_PLLON       (1u << 24)
#define RCC_CR_PLLRDY      (1u << 25)
#define RCC_CFGR_SW_MASK   0x3u
#define RCC_CFGR_SW_PLL    0x2u
#define RCC_CFGR_SWS_MASK  (0x3u << 2)
#define RCC_CFGR_SWS_PLL   (0x2u << 2)
#define RCC_CFGR_HPRE_MASK (0xFu << 4)
#define RCC_CFGR_PPRE1_POS 10
#define RCC_CFGR_PPRE2_POS 13
#define RCC_APB1ENR_PWREN  (1u << 28)
#define HSI_HZ             16000000u

/* ---- flash interface, 0x40023C00: wait states before the clock goes up */
#define FLASH_ACR        REG(0x40023C00u)
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN   (1u << 9)
#define FLASH_ACR_DCEN   (1u << 10)

/* ---- power controller, 0x40007000: voltage scale 1 (and over-drive on the F446) */
#define PWR_CR            REG(0x40007000u)
#define PWR_CSR           REG(0x40007004u)
#define PWR_CR_VOS_MASK   (0x3u << 14)
#define PWR_CR_VOS_SCALE1 (0x3u << 14)
#define PWR_CR_ODEN       (1u << 16)
#define PWR_CR_ODSWEN     (1u << 17)
#define PWR_CSR_ODRDY     (1u << 16)
#define PWR_CSR_ODSWRDY   (1u << 17)

/* ---- GPIO port of the USART pins */
#define GPIO_MODER   REG(TKD_STM32_UART_GPIO_BASE + 0x00u)
#define GPIO_OSPEEDR REG(TKD_STM32_UART_GPIO_BASE + 0x08u)
#define GPIO_PUPDR   REG(TKD_STM32_UART_GPIO_BASE + 0x0Cu)
#define GPIO_AFR(n)  REG(TKD_STM32_UART_GPIO_BASE + 0x20u + 4u * (n))

/* ---- USART (same layout on USART1/2/6) */
#define USART_SR         REG(TKD_UART_BASE + 0x00u)
#define USART_DR         REG(TKD_UART_BASE + 0x04u)
#define USART_BRR        REG(TKD_UART_BASE + 0x08u)
#define USART_CR1        REG(TKD_UART_BASE + 0x0Cu)
#define USART_CR2        REG(TKD_UART_BASE + 0x10u)
#define USART_CR3        REG(TKD_UART_BASE + 0x14u)
#define USART_SR_ORE     (1u << 3)
#define USART_SR_RXNE    (1u << 5)
#define USART_SR_TXE     (1u << 7)
#define USART_CR1_RE     (1u << 2)
#define USART_CR1_TE     (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE     (1u << 13)

/* ---- data watchpoint and trace unit: the cycle counter */
#define DEMCR              REG(0xE000EDFCu)
#define DEMCR_TRCENA       (1u << 24)
#define DWT_CTRL           REG(0xE0001000u)
#define DWT_CYCCNT         REG(0xE0001004u)
#define DWT_CTRL_CYCCNTENA 0x1u

/* Ready flags come within microseconds (the PLL locks in ~100 us); a flag that has not come
 * after this many polls never will (e.g. a register the part does not have). */
#define READY_POLLS 200000u

static uint32_t sysclk_hz = HSI_HZ;

/* ------------------------------------------------------------------ clocks */

#if TKD_STM32_CLOCK_SETUP
#if !defined(TKD_STM32_PLL_M) || !defined(TKD_STM32_PLL_N) || !defined(TKD_STM32_PLL_P) ||         \
    !defined(TKD_STM32_PLL_Q) || !defined(TKD_STM32_FLASH_WAIT_STATES)
#error "TKD_STM32_CLOCK_SETUP needs TKD_STM32_PLL_M, _N, _P, _Q and TKD_STM32_FLASH_WAIT_STATES."
#endif
#if HSI_HZ / TKD_STM32_PLL_M * TKD_STM32_PLL_N / TKD_STM32_PLL_P != TKD_BOARD_CLOCK_HZ
/* HSI / M * N / P must be the board's clock. */
#error "TKD_STM32_PLL_M/_N/_P do not give TKD_BOARD_CLOCK_HZ from the 16 MHz HSI."
#endif

static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    uint32_t n;
    for (n = 0; n < READY_POLLS; n++) {
        if ((*reg & mask) == want) {
            return 1;
        }
    }
    return 0;
}

/* PPREx field for a divider of 1, 2, 4, 8 or 16 (0xx: not divided, 100: /2, ... 111: /16). */
static uint32_t ppre_bits(uint32_t div)
{
    uint32_t bits = 0u;
    while (div > 1u) {
        div >>= 1;
        bits++;
    }
    return bits == 0u ? 0u : 0x4u | (bits - 1u);
}

/* HSI -> PLL -> SYSCLK. Returns 1 when SYSCLK runs from the PLL at the board's clock, 0 when
 * a step timed out (the core is then still on HSI, which it never left). */
static int clock_setup(void)
{
    uint32_t cfgr;

    RCC_CR |= RCC_CR_HSION;
    if (!wait_set(&RCC_CR, RCC_CR_HSIRDY, RCC_CR_HSIRDY)) {
        return 0;
    }
    /* Voltage scale 1 (needed above 84 MHz on the F411, 144 MHz on the F446); the PWR
     * registers are clocked only once PWREN is set. */
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR; /* the enable takes effect before the next access */
    PWR_CR = (PWR_CR & ~PWR_CR_VOS_MASK) | PWR_CR_VOS_SCALE1;

    /* Wait states first: the flash must keep up before the core speeds up. Read the
     * latency back, as the reference manual asks, to know it is in force. */
    FLASH_ACR =
        (uint32_t)TKD_STM32_FLASH_WAIT_STATES | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    if ((FLASH_ACR & 0xFu) != (uint32_t)TKD_STM32_FLASH_WAIT_STATES) {
        return 0;
    }

    /* AHB undivided; APB1/APB2 within their limits at the target clock (set now, while the
     * core is still at 16 MHz, so they are never over their limits). */
    cfgr = RCC_CFGR &
           ~(RCC_CFGR_HPRE_MASK | (0x7u << RCC_CFGR_PPRE1_POS) | (0x7u << RCC_CFGR_PPRE2_POS));
    cfgr |= ppre_bits(TKD_STM32_APB1_DIV) << RCC_CFGR_PPRE1_POS;
    cfgr |= ppre_bits(TKD_STM32_APB2_DIV) << RCC_CFGR_PPRE2_POS;
    RCC_CFGR = cfgr;

    /* PLL from HSI (PLLSRC = 0): VCO in = 16 MHz / M, VCO out = that * N, SYSCLK = / P.
     * Bits 31:28 (PLLR on the F446, reserved on the F411) keep their reset value. */
    RCC_CR &= ~RCC_CR_PLLON;
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY, 0u)) {
        return 0;
    }
    RCC_PLLCFGR = (RCC_PLLCFGR & 0xF0000000u) | (uint32_t)TKD_STM32_PLL_M |
                  ((uint32_t)TKD_STM32_PLL_N << 6) | (((uint32_t)TKD_STM32_PLL_P / 2u - 1u) << 16) |
                  ((uint32_t)TKD_STM32_PLL_Q << 24);
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
        RCC_CR &= ~RCC_CR_PLLON;
        return 0;
    }
#if TKD_STM32_OVERDRIVE
    /* F446 above 168 MHz: over-drive on, then switch the regulator to it (RM0390, PWR). */
    PWR_CR |= PWR_CR_ODEN;
    if (!wait_set(&PWR_CSR, PWR_CSR_ODRDY, PWR_CSR_ODRDY)) {
        return 0;
    }
    PWR_CR |= PWR_CR_ODSWEN;
    if (!wait_set(&PWR_CSR, PWR_CSR_ODSWRDY, PWR_CSR_ODSWRDY)) {
        return 0;
    }
#endif
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_PLL;
    if (!wait_set(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL)) {
        RCC_CFGR &= ~RCC_CFGR_SW_MASK; /* back to HSI */
        return 0;
    }
    return 1;
}
#endif

/* Clock of the bus the USART hangs on (APB1: USART2/3, UART4/5; APB2: USART1/6). */
static uint32_t uart_bus_hz(void)
{
    uint32_t div;
#if TKD_STM32_CLOCK_SETUP
    /* Read the prescaler back: after a timed-out set-up the core is on HSI with the
     * prescalers possibly already set for the fast clock. */
    uint32_t pos = TKD_STM32_UART_APB == 1 ? RCC_CFGR_PPRE1_POS : RCC_CFGR_PPRE2_POS;
    uint32_t bits = (RCC_CFGR >> pos) & 0x7u;
    div = (bits & 0x4u) ? 2u << (bits & 0x3u) : 1u;
#else
    div = TKD_STM32_UART_APB == 1 ? TKD_STM32_APB1_DIV : TKD_STM32_APB2_DIV;
#endif
    return sysclk_hz / div;
}

/* ------------------------------------------------------------------ serial */

static void gpio_alternate(uint32_t pin)
{
    GPIO_MODER = (GPIO_MODER & ~(0x3u << (2u * pin))) | (0x2u << (2u * pin)); /* AF mode */
    GPIO_OSPEEDR |= 0x2u << (2u * pin);                                       /* fast */
    GPIO_PUPDR =
        (GPIO_PUPDR & ~(0x3u << (2u * pin))) | (0x1u << (2u * pin)); /* pull-up: idle high */
    GPIO_AFR(pin / 8u) = (GPIO_AFR(pin / 8u) & ~(0xFu << (4u * (pin % 8u)))) |
                         ((uint32_t)TKD_STM32_UART_AF << (4u * (pin % 8u)));
}

static void uart_init(void)
{
    RCC_AHB1ENR |= 1u << TKD_STM32_UART_GPIO_RCC_BIT;
    if (TKD_STM32_UART_APB == 1) {
        RCC_APB1ENR |= 1u << TKD_STM32_UART_RCC_BIT;
    } else {
        RCC_APB2ENR |= 1u << TKD_STM32_UART_RCC_BIT;
    }
    (void)RCC_AHB1ENR; /* let the clock enables take effect */
    gpio_alternate(TKD_STM32_UART_TX_PIN);
    gpio_alternate(TKD_STM32_UART_RX_PIN);

    /* 8N1, 16x oversampling: BRR = f_bus / baud (mantissa.fraction in sixteenths). QEMU
     * does not model the baud rate but keeps what is written. */
    USART_CR1 = 0u;
    USART_CR2 = 0u;
    USART_CR3 = 0u;
    USART_BRR = (uart_bus_hz() + (uint32_t)TKD_BOARD_BAUD / 2u) / (uint32_t)TKD_BOARD_BAUD;
    /* QEMU drops received bytes until UE, TE and RE are all set. */
    USART_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE
#ifdef TKD_UART_RX_IRQ
                | USART_CR1_RXNEIE
#endif
        ;
}

void tkd_port_uart_write(const uint8_t *data, uint32_t len)
{
    uint32_t i;
    for (i = 0; i < len; i++) {
        while (!(USART_SR & USART_SR_TXE)) {
        }
        USART_DR = data[i];
    }
}

#ifdef TKD_UART_RX_IRQ
void tkd_port_irq_handler(void)
{
    uint32_t sr;
    /* An overrun (ORE) also raises the interrupt; reading SR then DR clears both flags. */
    while ((sr = USART_SR) & (USART_SR_RXNE | USART_SR_ORE)) {
        if (tkd_cm_rx_full()) {
            /* Full (only under a flood): leave the byte in DR and mask the line in the NVIC
             * until the main loop has made room. Masking in the NVIC, not RXNEIE, because
             * the USART keeps its request raised until DR is read. */
            TKD_NVIC_ICER(TKD_RX_IRQ_WORD) = TKD_RX_IRQ_BIT;
            return;
        }
        uint8_t byte = (uint8_t)(USART_DR & 0xFFu);
        if (sr & USART_SR_RXNE) {
            tkd_cm_rx_put(byte);
        }
    }
}

void tkd_port_uart_rx_unmask(void)
{
    TKD_NVIC_ISER(TKD_RX_IRQ_WORD) = TKD_RX_IRQ_BIT; /* a no-op unless the ring was full */
}
#else
int tkd_port_uart_read_byte(void)
{
    if (USART_SR & (USART_SR_RXNE | USART_SR_ORE)) {
        return (int)(USART_DR & 0xFFu);
    }
    return -1;
}
#endif

/* ------------------------------------------------------------------ counter */

#if defined(TKD_BOARD_COUNTER_DWT)
/* CPU cycles: 32 bits wrap after 2^32 / 100 MHz = 43 s, far longer than one inference. */
static uint32_t counter_start_cycles;

static void counter_init(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
}

void tkd_port_counter_start(void)
{
    counter_start_cycles = DWT_CYCCNT;
}

uint32_t tkd_port_counter_read(void)
{
    return DWT_CYCCNT - counter_start_cycles;
}

uint8_t tkd_port_counter_kind(void)
{
    return (uint8_t)TKD_COUNTER_CYCLES;
}
#elif defined(TKD_BOARD_COUNTER_SYSTICK_ICOUNT)
/* QEMU: SysTick on the CPU clock counts instructions under -icount shift=0; the counter
 * functions are tkd_cortex_m.c's. */
static void counter_init(void)
{
    tkd_cm_systick_start();
}
#else
#error "The stm32f4 port counts with counter kind dwt (hardware) or systick-icount (QEMU)."
#endif

/* ------------------------------------------------------------------ the rest */

void tkd_port_init(void)
{
#if TKD_STM32_CLOCK_SETUP
    sysclk_hz = clock_setup() ? (uint32_t)TKD_BOARD_CLOCK_HZ : HSI_HZ;
#else
    sysclk_hz = (uint32_t)TKD_BOARD_CLOCK_HZ; /* as the emulator models it */
#endif
    uart_init();
#ifdef TKD_UART_RX_IRQ
    tkd_cm_rx_start();
#endif
    counter_init();
}

/* The clock the set-up reached (overrides tkd_cortex_m.c's, which is the board file's). */
uint32_t tkd_port_clock_hz(void)
{
    return sysclk_hz;
}

int tkd_port_exit(int code)
{
#if TKD_STM32_SEMIHOSTING
    tkd_cm_semihosting_exit(code);
#else
    (void)code;
    return -1; /* nothing to exit to: the host sees UNSUPPORTED and the board keeps serving */
#endif
}
