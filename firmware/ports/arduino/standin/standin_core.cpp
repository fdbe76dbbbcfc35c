// standin_core.cpp - the host side of the stand-in Arduino core (see Arduino.h): runs the real
// sketch (setup, then loop until the input is used up) on bytes read from stdin and prints what
// the sketch wrote, one line per Serial.write() call:
//     W <length> <hex bytes>
// and a last line of counts:
//     END writes <n> dropped <n> dtr_polls <n> delays <n>
// Arguments: [dtr_low_polls [drop_at_write]]
//   dtr_low_polls  operator bool is false this many times before the host "opens" the port;
//   drop_at_write  that write (1 = the first) finds the port closed: it is dropped, returns 0,
//                  and the port reopens after dtr_low_polls more polls (a host that closed and
//                  reopened the port).
#include <stdio.h>
#include <stdlib.h>

#include "Arduino.h"

void setup(void);
void loop(void);

StandinSerial Serial;

static unsigned char *rx;
static size_t rx_len, rx_pos;
static long dtr_low_left, dtr_low_polls, drop_at_write = -1;
static unsigned long writes, dropped, dtr_polls, delays, fake_us;
static uint32_t regs[4];
static uint32_t cyccnt;

void StandinSerial::begin(unsigned long baud)
{
    (void)baud;
}

StandinSerial::operator bool()
{
    dtr_polls++;
    if (dtr_low_left > 0) {
        dtr_low_left--;
        return false;
    }
    return true;
}

int StandinSerial::available()
{
    return (int)(rx_len - rx_pos);
}

int StandinSerial::read()
{
    return rx_pos < rx_len ? rx[rx_pos++] : -1;
}

size_t StandinSerial::write(const uint8_t *data, size_t len)
{
    size_t i;
    writes++;
    if ((long)writes == drop_at_write) {
        dtr_low_left = dtr_low_polls; // the host closed the port just now
    }
    if (dtr_low_left > 0) {
        dropped += len;
        printf("D %zu\n", len);
        return 0;
    }
    printf("W %zu ", len);
    for (i = 0; i < len; i++) {
        printf("%02x", data[i]);
    }
    printf("\n");
    return 1; // as Mbed's USBSerial: true for the whole buffer
}

unsigned long micros(void)
{
    fake_us += 3;
    return fake_us;
}

void delay(unsigned long ms)
{
    delays++;
    fake_us += ms * 1000u;
}

void delayMicroseconds(unsigned int us)
{
    fake_us += us;
}

volatile uint32_t *tkd_standin_reg(uint32_t addr)
{
    switch (addr) {
    case 0xE0001004u: // DWT_CYCCNT: runs while DWT_CTRL.CYCCNTENA is set
        if (regs[1] & 1u) {
            cyccnt += 64u;
        }
        return &cyccnt;
    case 0xE000EDFCu:
        return &regs[0];
    case 0xE0001000u:
        return &regs[1];
    default: // the lock access register and anything else: write-only here
        return &regs[3];
    }
}

int main(int argc, char **argv)
{
    size_t cap = 1u << 16;
    size_t n;
    if (argc > 1) {
        dtr_low_polls = atol(argv[1]);
        dtr_low_left = dtr_low_polls;
    }
    if (argc > 2) {
        drop_at_write = atol(argv[2]);
    }
    rx = (unsigned char *)malloc(cap);
    while (rx != NULL && (n = fread(rx + rx_len, 1, cap - rx_len, stdin)) > 0) {
        rx_len += n;
        if (rx_len == cap) {
            cap *= 2;
            rx = (unsigned char *)realloc(rx, cap);
        }
    }
    if (rx == NULL) {
        return 1;
    }
    setup();
    while (rx_pos < rx_len) {
        loop();
    }
    printf("END writes %lu dropped %lu dtr_polls %lu delays %lu\n", writes, dropped, dtr_polls,
           delays);
    free(rx);
    return 0;
}
