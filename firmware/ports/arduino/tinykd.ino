// tinykd device application for Arduino boards (sketch entry points only).
// The protocol, the model call and the counter live in the portable C sources beside this
// file; tkd_port_arduino.cpp connects them to Serial (one write per frame) and the counter.
#include "tkd_app.h"
#include "tkd_port.h"

void setup()
{
    tkd_app_init();
}

void loop()
{
    int c;
    while ((c = tkd_port_uart_read_byte()) >= 0) {
        tkd_app_feed_byte((uint8_t)c);
    }
}
