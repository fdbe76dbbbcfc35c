/* tkd_port.h - the hardware abstraction the portable tinykd application needs.
 *
 * A port (firmware/ports/<port>/) implements these few functions for one family of boards:
 * start-up and clocks, a byte-wise serial link and a counter around the model call.
 * Board constants (name, clock) come from the generated tkd_board.h.
 */
#ifndef TKD_PORT_H
#define TKD_PORT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What tkd_port_counter_read() counts (sent to the host in INFO.counter_kind). */
#define TKD_COUNTER_NONE         0u
#define TKD_COUNTER_INSTRUCTIONS 1u /* QEMU: SysTick under -icount shift=0 */
#define TKD_COUNTER_CYCLES       2u /* hardware: DWT->CYCCNT */

void tkd_port_init(void);

/* Next received byte (0..255), or -1 if none is waiting. Must not block. */
int tkd_port_uart_read_byte(void);

/* Send len bytes; may block until they are handed to the hardware. */
void tkd_port_uart_write(const uint8_t *data, uint32_t len);

/* Zero the counter; tkd_port_counter_read() returns the count since the last start. */
void tkd_port_counter_start(void);
uint32_t tkd_port_counter_read(void);
uint8_t tkd_port_counter_kind(void);

const char *tkd_port_board_name(void);
uint32_t tkd_port_clock_hz(void);

/* End the program with a status (QEMU: semihosting). Returns -1 if the port cannot exit. */
int tkd_port_exit(int code);

#ifdef __cplusplus
}
#endif

#endif /* TKD_PORT_H */
