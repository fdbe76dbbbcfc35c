/* tkd_protocol.c - CRC-16/CCITT-FALSE, CRC-32 and in-place COBS decoding for the device side. */
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

/* CRC-32/IEEE (reflected polynomial 0xEDB88320), four bits at a time from a 64-byte table. */
static const uint32_t crc32_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t tkd_crc32(const uint8_t *data, uint32_t len, uint32_t crc)
{
    uint32_t i;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc32_nibble[crc & 0xFu];
        crc = (crc >> 4) ^ crc32_nibble[crc & 0xFu];
    }
    return ~crc;
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
