/* tkd_protocol.c - CRC-16/CCITT-FALSE and in-place COBS decoding for the device side. */
#include "tkd_protocol.h"

uint16_t tkd_crc16(const uint8_t *data, uint32_t len, uint16_t crc)
{
    uint32_t i;
    for (i = 0; i < len; i++) {
        unsigned bit;
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8u; bit++) {
            if (crc & 0x8000u) {
                crc = (uint16_t)((crc << 1) ^ 0x1021u);
            } else {
                crc = (uint16_t)(crc << 1);
            }
        }
    }
    return crc;
}

/* Each COBS block is a code byte n (1..255) followed by n-1 non-zero bytes; a block with
 * n < 255 stands for its bytes plus a zero, except at the very end. The decoded output is
 * never longer than the input, so writing behind the read position is safe. */
int32_t tkd_cobs_decode_inplace(uint8_t *buf, uint32_t len)
{
    uint32_t rd = 0, wr = 0;
    while (rd < len) {
        uint32_t code = buf[rd];
        uint32_t k;
        if (code == 0u || rd + code > len) {
            return -1;
        }
        rd++;
        for (k = 1; k < code; k++) {
            uint8_t b = buf[rd++];
            if (b == 0u) {
                return -1;
            }
            buf[wr++] = b;
        }
        if (code != 0xFFu && rd < len) {
            buf[wr++] = 0u;
        }
    }
    return (int32_t)wr;
}
