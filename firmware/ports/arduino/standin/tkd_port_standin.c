/* tkd_port_standin.c - a stand-in for tkd_port_arduino.cpp, used only to size the portable
 * part of an Arduino build with plain arm-none-eabi-gcc when arduino-cli is not installed.
 * It links against the same app, runtime and model sources with the core's CPU flags; the
 * image is measured, never run. The serial functions touch a volatile mailbox so that the
 * compiler keeps the whole protocol path; the counter is the real DWT code. What Mbed OS,
 * its USB stack and Serial cost is added as a fixed allowance (boards/nano33.toml). */
#include <stdint.h>

#include "tkd_app.h"
#include "tkd_board.h"
#include "tkd_port.h"
#include "tkd_protocol.h"

#define TKD_DEMCR      (*(volatile uint32_t *)0xE000EDFCu)
#define TKD_DWT_CTRL   (*(volatile uint32_t *)0xE0001000u)
#define TKD_DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

static volatile int32_t standin_rx = -1;
static volatile uint8_t standin_tx;
static uint32_t counter_start;

void tkd_port_init(void)
{
    TKD_DEMCR |= 1u << 24;
    TKD_DWT_CYCCNT = 0u;
    TKD_DWT_CTRL |= 1u;
}

int tkd_port_uart_read_byte(void)
{
    return (int)standin_rx;
}

/* The real port collects each frame before one Serial.write(): the same buffer here, so that
 * the fit check counts its RAM. */
static uint8_t tx_frame[TKD_MAX_ENCODED + 2u];
static uint32_t tx_len;

static void send_frame(void)
{
    uint32_t i;
    for (i = 0; i < tx_len; i++) {
        standin_tx = tx_frame[i];
    }
    tx_len = 0;
}

void tkd_port_uart_write(const uint8_t *data, uint32_t len)
{
    uint32_t i;
    for (i = 0; i < len; i++) {
        if (tx_len == sizeof tx_frame) {
            send_frame();
        }
        tx_frame[tx_len++] = data[i];
        if (data[i] == 0u && tx_len > 1u) {
            send_frame();
        }
    }
}

void tkd_port_counter_start(void)
{
    counter_start = TKD_DWT_CYCCNT;
}

uint32_t tkd_port_counter_read(void)
{
    return TKD_DWT_CYCCNT - counter_start;
}

uint8_t tkd_port_counter_kind(void)
{
    return (uint8_t)TKD_COUNTER_CYCLES;
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
    (void)code;
    return -1;
}

int main(void)
{
    tkd_app_run();
    return 0;
}
