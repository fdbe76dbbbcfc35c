// Arduino.h - a stand-in for the few parts of an Arduino core that tkd_port_arduino.cpp uses,
// so that the real port and sketch compile and run on a PC (tests/test_arduino_port.py) and
// compile for the board's CPU without the core. Not used on a board: the core's own Arduino.h is.
//
// Serial behaves like Mbed's USB CDC Serial: write() sends the whole buffer and returns 1, or
// returns 0 and drops the data while the host has the port closed (DTR low); operator bool is
// DTR. Every write() is recorded, so a test can see how the port cut its output into writes.
// Debug registers (DWT, DEMCR) are an array here: TKD_PORT_REG maps the port's accesses onto it.
#ifndef TKD_STANDIN_ARDUINO_H
#define TKD_STANDIN_ARDUINO_H

#include <stddef.h>
#include <stdint.h>

class StandinSerial
{
  public:
    void begin(unsigned long baud);
    explicit operator bool();
    int available();
    int read();
    size_t write(const uint8_t *data, size_t len);
};

extern StandinSerial Serial;

unsigned long micros(void);
void delay(unsigned long ms);
void delayMicroseconds(unsigned int us);

volatile uint32_t *tkd_standin_reg(uint32_t addr);
#define TKD_PORT_REG(addr) (*tkd_standin_reg(addr))

#endif
