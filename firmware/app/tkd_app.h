/* tkd_app.h - the portable tinykd device application.
 *
 * Bare-metal ports call tkd_app_run(), which never returns. Ports with their own main loop
 * (Arduino) call tkd_app_init() once and hand every received byte to tkd_app_feed_byte().
 */
#ifndef TKD_APP_H
#define TKD_APP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void tkd_app_init(void);
void tkd_app_feed_byte(uint8_t byte);
void tkd_app_run(void);

#ifdef __cplusplus
}
#endif

#endif /* TKD_APP_H */
