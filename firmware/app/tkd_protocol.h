/* tkd_protocol.h - wire format shared with the host (tinykd/device/protocol.py).
 *
 *   frame = COBS(body) 0x00
 *   body  = type:u8 seq:u16le payload crc:u16le
 *   crc   = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over type, seq and payload
 *
 * All integers little-endian, floats IEEE-754 binary32. See protocol.py for the payloads.
 */
#ifndef TKD_PROTOCOL_H
#define TKD_PROTOCOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TKD_PROTOCOL_VERSION 2u
#define TKD_MAX_PAYLOAD      1024u
#define TKD_HEADER_BYTES     3u
#define TKD_CRC_BYTES        2u
#define TKD_MAX_BODY         (TKD_HEADER_BYTES + TKD_MAX_PAYLOAD + TKD_CRC_BYTES)
#define TKD_MAX_ENCODED      (TKD_MAX_BODY + (TKD_MAX_BODY + 253u) / 254u)

/* RESULT and AUDIO_RESULT end with a trailer the host checks before it trusts a result:
 *   session:u32    the value the last HELLO carried (HELLO payload session:u32); 0 after a
 *                  reset, so the host sees that the device lost its state and re-handshakes
 *   input_crc:u32  CRC-32 of the input the model ran on (the int8 input buffer, or the
 *                  int16 little-endian clip for INFER_AUDIO): a request damaged on the way in,
 *                  or a LOAD lost to a reset, cannot pass as the host's input
 *   check:u32      CRC-32 of the payload before it (a second check beside the frame's CRC-16)
 * CRC-32 is the IEEE one (zlib's crc32: reflected 0xEDB88320, init and final xor ~0). */
#define TKD_RESULT_TRAILER_BYTES 12u

/* PROFILE_RESULT: mark_cost:u32 output_crc:u32 layers:u16 marks:u32[layers] + trailer, in one
 * frame: at most this many layer marks */
#define TKD_PROFILE_MAX_LAYERS ((TKD_MAX_PAYLOAD - 10u - TKD_RESULT_TRAILER_BYTES) / 4u)

/* host -> device */
#define TKD_MSG_PING 0x01u
/* HELLO payload: empty, or session:u32 (non-zero), echoed in every RESULT/AUDIO_RESULT */
#define TKD_MSG_HELLO 0x02u
#define TKD_MSG_INFER 0x03u
/* Keyword spotting: raw int16 audio in, the device runs its own feature extractor
 * (firmware/frontend) and then the model. Payload offset:u32 + clip bytes loads a chunk of
 * the 16000-sample little-endian clip (answer LOADED); an empty payload runs it (answer
 * AUDIO_RESULT). Firmware built without the KWS frontend (project option device_frontend,
 * TKD_APP_FRONTEND_KWS) answers ERROR(UNSUPPORTED). */
#define TKD_MSG_INFER_AUDIO 0x04u
#define TKD_MSG_LOAD        0x05u
/* Per-layer profile: payload as INFER (the input, or empty for the LOADed one). Runs the model
 * once through tkd_model_invoke_profile (model.h) and answers PROFILE_RESULT: marks[k] is the
 * counter after the k-th layer that runs code, counted from just before the call; mark_cost is
 * one mark's own cost, measured beside it; output_crc the CRC-32 of the output. INFER is not
 * affected (tkd_model_invoke has no marks). A model without the profile entry (hand-written
 * model.c) or with more than TKD_PROFILE_MAX_LAYERS layers: ERROR(UNSUPPORTED, layers). */
#define TKD_MSG_PROFILE 0x06u
#define TKD_MSG_EXIT    0x0Eu
/* device -> host */
#define TKD_MSG_PONG   0x81u
#define TKD_MSG_INFO   0x82u
#define TKD_MSG_RESULT 0x83u
/* frontend_count:u32 model_count:u32 features:int8[490] output:int8[output_bytes] */
#define TKD_MSG_AUDIO_RESULT 0x84u
#define TKD_MSG_LOADED       0x85u
/* mark_cost:u32 output_crc:u32 layers:u16 marks:u32[layers] + trailer */
#define TKD_MSG_PROFILE_RESULT 0x86u
#define TKD_MSG_ERROR          0x7Fu

/* ERROR codes */
#define TKD_ERR_BAD_FRAME    1u
#define TKD_ERR_UNKNOWN_TYPE 2u
#define TKD_ERR_BAD_LENGTH   3u
#define TKD_ERR_MODEL_FAILED 4u
#define TKD_ERR_UNSUPPORTED  5u
#define TKD_ERR_TOO_LONG     6u
#define TKD_ERR_BAD_OFFSET   7u

uint16_t tkd_crc16(const uint8_t *data, uint32_t len, uint16_t crc);

/* CRC-32/IEEE continued from `crc` (0 to start), as zlib's crc32(data, crc). */
uint32_t tkd_crc32(const uint8_t *data, uint32_t len, uint32_t crc);

/* Decode a COBS block (without its 0x00 delimiter) in place. Returns the decoded length,
 * or -1 if the block is malformed. */
int32_t tkd_cobs_decode_inplace(uint8_t *buf, uint32_t len);

#ifdef __cplusplus
}
#endif

#endif /* TKD_PROTOCOL_H */
