/* tkd_app.c - the device side of the tinykd serial protocol (see tkd_protocol.h).
 *
 * Receives COBS frames byte by byte, checks their CRC, runs the model on INFER and answers
 * with RESULT (output and the port's instruction/cycle count). In a project built with the
 * KWS frontend (TKD_APP_FRONTEND_KWS) INFER_AUDIO takes a raw clip, runs the frontend and the
 * model and answers with AUDIO_RESULT (both counts, the features and the output). Invalid
 * frames are answered with ERROR(BAD_FRAME) so the host can resend at once instead of waiting
 * for a timeout. Every result carries the session the host set with HELLO (0 after a reset)
 * and the CRC-32 of the input it was computed from (see tkd_protocol.h).
 * PROFILE runs the model through tkd_model_invoke_profile, which calls back after every layer:
 * the callback reads the port's counter into a small array, sent back in PROFILE_RESULT. INFER
 * calls tkd_model_invoke, which has no such calls: its counts do not change.
 */
#include <string.h>

#include "model.h"
#include "tkd_app.h"
#include "tkd_port.h"
#include "tkd_protocol.h"

#define TKD_RUNTIME_NAME "tinykd"

/* The project's choices, written by project generation (tinykd/firmware/project.py):
 * TKD_APP_FRONTEND_KWS 1 when the device runs the KWS frontend on raw audio (INFER_AUDIO);
 * the project then carries firmware/frontend. Otherwise the host sends the model's input
 * (INFER, LOAD) whatever its size, and INFER_AUDIO is refused. A build without the
 * generated header (the host tests of the protocol loop) has no frontend. */
#if defined(__has_include)
#if __has_include("tkd_app_config.h")
#include "tkd_app_config.h"
#endif
#endif
#ifndef TKD_APP_FRONTEND_KWS
#define TKD_APP_FRONTEND_KWS 0
#endif

#if TKD_APP_FRONTEND_KWS
#include "tkd_frontend.h"
/* Project generation refuses such models with a clear message first; these catch
 * hand-written model sources. */
#if TKD_MODEL_INPUT_BYTES != TKD_FRONTEND_NUM_FEATURES
#error "TKD_APP_FRONTEND_KWS: the model does not take the frontend's 49 x 10 int8 features"
#endif
#if TKD_MODEL_INPUT_ZERO_POINT != TKD_FRONTEND_ZERO_POINT
#error "TKD_APP_FRONTEND_KWS: the model's input zero point differs from the frontend's"
#endif
#endif

/* The per-layer profile needs the model's profile entry (generated model.c; hand-written
 * model sources may lack it) and its marks in one frame. */
#if defined(TKD_MODEL_PROFILE_LAYERS)
#if TKD_MODEL_PROFILE_LAYERS > 0 && TKD_MODEL_PROFILE_LAYERS <= TKD_PROFILE_MAX_LAYERS
#define TKD_APP_PROFILE 1
#endif
#endif
#ifndef TKD_APP_PROFILE
#define TKD_APP_PROFILE 0
#endif

#if (TKD_MODEL_OUTPUT_BYTES + 4 + TKD_RESULT_TRAILER_BYTES) > TKD_MAX_PAYLOAD
#error "model output does not fit one RESULT frame: raise TKD_MAX_PAYLOAD on both sides"
#endif

static uint8_t rx_buf[TKD_MAX_ENCODED];
static uint32_t rx_len;
static uint8_t rx_overflow;

/* set by HELLO; zero from reset until the host's first HELLO */
static uint32_t session;

/* body being built for sending: type, seq, payload, room for the CRC */
static uint8_t tx_body[TKD_MAX_BODY];

#if defined(TKD_MODEL_IO_IN_ARENA)
/* The model's input and output tensors live in its arena (model.h): received input is written
 * straight there and results are read from there, no copies. A run consumes the input: an empty
 * INFER after LOAD runs once (a rerun reports another input CRC, the host loads again). */
#define input_buf  (tkd_model_input())
#define output_buf (tkd_model_output())
#else
/* hand-written model sources of the older model.h contract: the caller's buffers */
static int8_t input_buf[TKD_MODEL_INPUT_BYTES];
static int8_t output_buf[TKD_MODEL_OUTPUT_BYTES];
#endif

#if TKD_APP_FRONTEND_KWS
#if (8 + TKD_FRONTEND_NUM_FEATURES + TKD_MODEL_OUTPUT_BYTES + TKD_RESULT_TRAILER_BYTES) >          \
    TKD_MAX_PAYLOAD
#error "features and model output do not fit one AUDIO_RESULT frame"
#endif
/* one clip of int16 audio, filled by INFER_AUDIO chunks */
static int16_t audio_buf[TKD_FRONTEND_CLIP_SAMPLES];
#endif

static void put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    put_u32(p, v);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* COBS-encode tx_body[0..len) straight to the UART, framed by zero bytes. */
static void send_encoded(uint32_t len)
{
    static const uint8_t zero = 0u;
    uint32_t pos = 0;
    tkd_port_uart_write(&zero, 1);
    for (;;) {
        uint32_t run = 0;
        uint8_t code;
        while (pos + run < len && run < 254u && tx_body[pos + run] != 0u) {
            run++;
        }
        code = (uint8_t)(run + 1u);
        tkd_port_uart_write(&code, 1);
        if (run) {
            tkd_port_uart_write(&tx_body[pos], run);
        }
        pos += run;
        if (run == 254u) {
            /* a full block carries no implied zero */
            if (pos >= len) {
                break;
            }
            continue;
        }
        if (pos >= len) {
            break;
        }
        pos++; /* skip the zero the block stands for */
        if (pos == len) {
            /* the body ends with a zero: one more empty block encodes it */
            code = 1u;
            tkd_port_uart_write(&code, 1);
            break;
        }
    }
    tkd_port_uart_write(&zero, 1);
}

static void send(uint8_t type, uint16_t seq, uint32_t payload_len)
{
    uint16_t crc;
    tx_body[0] = type;
    put_u16(&tx_body[1], seq);
    crc = tkd_crc16(tx_body, TKD_HEADER_BYTES + payload_len, 0xFFFFu);
    put_u16(&tx_body[TKD_HEADER_BYTES + payload_len], crc);
    send_encoded(TKD_HEADER_BYTES + payload_len + TKD_CRC_BYTES);
}

static void send_error(uint16_t seq, uint8_t code, uint8_t req_type, int32_t detail)
{
    uint8_t *p = &tx_body[TKD_HEADER_BYTES];
    p[0] = code;
    p[1] = req_type;
    put_u32(&p[2], (uint32_t)detail);
    send(TKD_MSG_ERROR, seq, 6u);
}

/* Append the result trailer (session, input CRC, CRC-32 check) to a payload of len bytes;
 * returns the new length. */
static uint32_t put_trailer(uint8_t *payload, uint32_t len, uint32_t input_crc)
{
    put_u32(&payload[len], session);
    put_u32(&payload[len + 4u], input_crc);
    put_u32(&payload[len + 8u], tkd_crc32(payload, len + 8u, 0u));
    return len + TKD_RESULT_TRAILER_BYTES;
}

static uint32_t put_str(uint8_t *p, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    if (n > 255u) {
        n = 255u;
    }
    p[0] = (uint8_t)n;
    memcpy(&p[1], s, n);
    return n + 1u;
}

static void send_info(uint16_t seq)
{
    uint8_t *p = &tx_body[TKD_HEADER_BYTES];
    uint32_t n = 0;
    p[n++] = (uint8_t)TKD_PROTOCOL_VERSION;
    p[n++] = tkd_port_counter_kind();
    put_u16(&p[n], TKD_MAX_PAYLOAD);
    n += 2;
    put_u32(&p[n], tkd_port_clock_hz());
    n += 4;
    put_u32(&p[n], (uint32_t)TKD_MODEL_ARENA_BYTES);
    n += 4;
    put_u32(&p[n], (uint32_t)TKD_MODEL_INPUT_BYTES);
    n += 4;
    put_u32(&p[n], (uint32_t)TKD_MODEL_OUTPUT_BYTES);
    n += 4;
    put_f32(&p[n], TKD_MODEL_INPUT_SCALE);
    n += 4;
    put_u32(&p[n], (uint32_t)(int32_t)(TKD_MODEL_INPUT_ZERO_POINT));
    n += 4;
    put_f32(&p[n], TKD_MODEL_OUTPUT_SCALE);
    n += 4;
    put_u32(&p[n], (uint32_t)(int32_t)(TKD_MODEL_OUTPUT_ZERO_POINT));
    n += 4;
    memcpy(&p[n], tkd_model_hash, 8);
    n += 8;
    /* three short strings; each is cut to 255 bytes, so they always fit TKD_MAX_PAYLOAD */
    n += put_str(&p[n], tkd_port_board_name());
    n += put_str(&p[n], TKD_RUNTIME_NAME);
    n += put_str(&p[n], TKD_MODEL_NAME);
    send(TKD_MSG_INFO, seq, n);
}

static void do_infer(uint16_t seq, const uint8_t *payload, uint32_t len)
{
    uint32_t count, input_crc;
    int rc;
    uint8_t *p;
    if (len == (uint32_t)TKD_MODEL_INPUT_BYTES) {
        memcpy(input_buf, payload, len);
    } else if (len != 0u) {
        send_error(seq, TKD_ERR_BAD_LENGTH, TKD_MSG_INFER, (int32_t)TKD_MODEL_INPUT_BYTES);
        return;
    }
    input_crc = tkd_crc32((const uint8_t *)input_buf, (uint32_t)TKD_MODEL_INPUT_BYTES, 0u);
    tkd_port_counter_start();
    rc = tkd_model_invoke(input_buf, output_buf);
    count = tkd_port_counter_read();
    if (rc != 0) {
        send_error(seq, TKD_ERR_MODEL_FAILED, TKD_MSG_INFER, (int32_t)rc);
        return;
    }
    p = &tx_body[TKD_HEADER_BYTES];
    put_u32(p, count);
    memcpy(&p[4], output_buf, TKD_MODEL_OUTPUT_BYTES);
    send(TKD_MSG_RESULT, seq, put_trailer(p, 4u + (uint32_t)TKD_MODEL_OUTPUT_BYTES, input_crc));
}

#if TKD_APP_PROFILE
/* marks[k]: the counter after layer call k; the extra last slot takes the calibration marks */
static uint32_t profile_marks[TKD_MODEL_PROFILE_LAYERS + 1];
#define PROFILE_CALIBRATION_MARKS 32u

static void profile_mark(uint32_t k)
{
    profile_marks[k < (uint32_t)TKD_MODEL_PROFILE_LAYERS ? k : (uint32_t)TKD_MODEL_PROFILE_LAYERS] =
        tkd_port_counter_read();
}

/* called through a volatile pointer, as model.c calls it through its argument: never inlined */
static void (*volatile profile_mark_fn)(uint32_t k) = profile_mark;

/* One mark's cost in counter units: the mean of a run of marks back to back. */
static uint32_t profile_mark_cost(void)
{
    void (*mark)(uint32_t k) = profile_mark_fn;
    uint32_t i, total;
    tkd_port_counter_start();
    for (i = 0; i < PROFILE_CALIBRATION_MARKS; i++) {
        mark((uint32_t)TKD_MODEL_PROFILE_LAYERS);
    }
    total = tkd_port_counter_read();
    return (total + PROFILE_CALIBRATION_MARKS / 2u) / PROFILE_CALIBRATION_MARKS;
}

/* PROFILE: payload as INFER -> PROFILE_RESULT mark_cost, output_crc, layers, marks[layers] */
static void do_profile(uint16_t seq, const uint8_t *payload, uint32_t len)
{
    uint32_t k, n, mark_cost, input_crc;
    int rc;
    uint8_t *p;
    if (len == (uint32_t)TKD_MODEL_INPUT_BYTES) {
        memcpy(input_buf, payload, len);
    } else if (len != 0u) {
        send_error(seq, TKD_ERR_BAD_LENGTH, TKD_MSG_PROFILE, (int32_t)TKD_MODEL_INPUT_BYTES);
        return;
    }
    input_crc = tkd_crc32((const uint8_t *)input_buf, (uint32_t)TKD_MODEL_INPUT_BYTES, 0u);
    mark_cost = profile_mark_cost();
    tkd_port_counter_start();
    rc = tkd_model_invoke_profile(input_buf, output_buf, profile_mark);
    if (rc != 0) {
        send_error(seq, TKD_ERR_MODEL_FAILED, TKD_MSG_PROFILE, (int32_t)rc);
        return;
    }
    p = &tx_body[TKD_HEADER_BYTES];
    put_u32(p, mark_cost);
    put_u32(&p[4], tkd_crc32((const uint8_t *)output_buf, (uint32_t)TKD_MODEL_OUTPUT_BYTES, 0u));
    put_u16(&p[8], (uint32_t)TKD_MODEL_PROFILE_LAYERS);
    n = 10u;
    for (k = 0; k < (uint32_t)TKD_MODEL_PROFILE_LAYERS; k++, n += 4u) {
        put_u32(&p[n], profile_marks[k]);
    }
    send(TKD_MSG_PROFILE_RESULT, seq, put_trailer(p, n, input_crc));
}
#elif defined(TKD_MODEL_PROFILE_LAYERS)
#define TKD_APP_PROFILE_LAYERS TKD_MODEL_PROFILE_LAYERS /* too many for one PROFILE_RESULT */
#else
#define TKD_APP_PROFILE_LAYERS 0 /* model sources without tkd_model_invoke_profile */
#endif

static void do_load(uint16_t seq, const uint8_t *payload, uint32_t len)
{
    uint32_t offset, n;
    uint8_t *p;
    if (len < 4u) {
        send_error(seq, TKD_ERR_BAD_LENGTH, TKD_MSG_LOAD, 4);
        return;
    }
    offset = get_u32(payload);
    n = len - 4u;
    if (offset > (uint32_t)TKD_MODEL_INPUT_BYTES || n > (uint32_t)TKD_MODEL_INPUT_BYTES - offset) {
        send_error(seq, TKD_ERR_BAD_OFFSET, TKD_MSG_LOAD, (int32_t)TKD_MODEL_INPUT_BYTES);
        return;
    }
    memcpy((uint8_t *)input_buf + offset, payload + 4, n);
    p = &tx_body[TKD_HEADER_BYTES];
    put_u32(p, offset);
    put_u16(&p[4], n);
    send(TKD_MSG_LOADED, seq, 6u);
}

#if TKD_APP_FRONTEND_KWS
/* INFER_AUDIO: offset:u32 + bytes of the little-endian int16 clip -> LOADED; empty -> run
 * the frontend on the clip, then the model -> AUDIO_RESULT. */
static void do_infer_audio(uint16_t seq, const uint8_t *payload, uint32_t len)
{
    uint32_t offset, n, frontend_count, model_count, input_crc;
    uint8_t *p;
    int rc;
    if (len != 0u) {
        if (len < 4u) {
            send_error(seq, TKD_ERR_BAD_LENGTH, TKD_MSG_INFER_AUDIO, 4);
            return;
        }
        offset = get_u32(payload);
        n = len - 4u;
        if (offset > (uint32_t)sizeof audio_buf || n > (uint32_t)sizeof audio_buf - offset) {
            send_error(seq, TKD_ERR_BAD_OFFSET, TKD_MSG_INFER_AUDIO, (int32_t)sizeof audio_buf);
            return;
        }
        memcpy((uint8_t *)audio_buf + offset, payload + 4, n);
        p = &tx_body[TKD_HEADER_BYTES];
        put_u32(p, offset);
        put_u16(&p[4], n);
        send(TKD_MSG_LOADED, seq, 6u);
        return;
    }
    if (TKD_MODEL_INPUT_SCALE != TKD_FRONTEND_SCALE) {
        /* hand-written model sources not quantised like the frontend's output: refuse */
        send_error(seq, TKD_ERR_UNSUPPORTED, TKD_MSG_INFER_AUDIO, 1);
        return;
    }
    input_crc = tkd_crc32((const uint8_t *)audio_buf, (uint32_t)sizeof audio_buf, 0u);
    tkd_port_counter_start();
    tkd_frontend_run(audio_buf, input_buf, NULL);
    frontend_count = tkd_port_counter_read();
    p = &tx_body[TKD_HEADER_BYTES];
    memcpy(&p[8], input_buf, TKD_FRONTEND_NUM_FEATURES); /* before the run reuses their bytes */
    tkd_port_counter_start();
    rc = tkd_model_invoke(input_buf, output_buf);
    model_count = tkd_port_counter_read();
    if (rc != 0) {
        send_error(seq, TKD_ERR_MODEL_FAILED, TKD_MSG_INFER_AUDIO, (int32_t)rc);
        return;
    }
    put_u32(p, frontend_count);
    put_u32(&p[4], model_count);
    memcpy(&p[8 + TKD_FRONTEND_NUM_FEATURES], output_buf, TKD_MODEL_OUTPUT_BYTES);
    send(TKD_MSG_AUDIO_RESULT, seq,
         put_trailer(p, 8u + (uint32_t)TKD_FRONTEND_NUM_FEATURES + (uint32_t)TKD_MODEL_OUTPUT_BYTES,
                     input_crc));
}
#endif

static void handle_frame(void)
{
    int32_t n = tkd_cobs_decode_inplace(rx_buf, rx_len);
    uint32_t body_len, payload_len;
    uint16_t crc, seq;
    uint8_t type;
    const uint8_t *payload;

    if (n < (int32_t)(TKD_HEADER_BYTES + TKD_CRC_BYTES)) {
        send_error(0, TKD_ERR_BAD_FRAME, 0, n);
        return;
    }
    body_len = (uint32_t)n;
    crc = (uint16_t)(rx_buf[body_len - 2u] | ((uint16_t)rx_buf[body_len - 1u] << 8));
    if (tkd_crc16(rx_buf, body_len - TKD_CRC_BYTES, 0xFFFFu) != crc) {
        send_error(0, TKD_ERR_BAD_FRAME, 0, -2);
        return;
    }
    type = rx_buf[0];
    seq = (uint16_t)(rx_buf[1] | ((uint16_t)rx_buf[2] << 8));
    payload = &rx_buf[TKD_HEADER_BYTES];
    payload_len = body_len - TKD_HEADER_BYTES - TKD_CRC_BYTES;

    switch (type) {
    case TKD_MSG_PING: {
        uint8_t *p = &tx_body[TKD_HEADER_BYTES];
        p[0] = (uint8_t)TKD_PROTOCOL_VERSION;
        put_u16(&p[1], TKD_MAX_PAYLOAD);
        send(TKD_MSG_PONG, seq, 3u);
        break;
    }
    case TKD_MSG_HELLO:
        if (payload_len == 4u) {
            session = get_u32(payload);
        } else if (payload_len != 0u) {
            send_error(seq, TKD_ERR_BAD_LENGTH, type, 4);
            break;
        }
        send_info(seq);
        break;
    case TKD_MSG_INFER:
        do_infer(seq, payload, payload_len);
        break;
    case TKD_MSG_LOAD:
        do_load(seq, payload, payload_len);
        break;
    case TKD_MSG_PROFILE:
#if TKD_APP_PROFILE
        do_profile(seq, payload, payload_len);
#else
        send_error(seq, TKD_ERR_UNSUPPORTED, type, (int32_t)TKD_APP_PROFILE_LAYERS);
#endif
        break;
    case TKD_MSG_INFER_AUDIO:
#if TKD_APP_FRONTEND_KWS
        do_infer_audio(seq, payload, payload_len);
#else
        send_error(seq, TKD_ERR_UNSUPPORTED, type, 0);
#endif
        break;
    case TKD_MSG_EXIT:
        if (tkd_port_exit(payload_len ? (int)payload[0] : 0) != 0) {
            send_error(seq, TKD_ERR_UNSUPPORTED, type, 0);
        }
        break;
    default:
        send_error(seq, TKD_ERR_UNKNOWN_TYPE, type, 0);
        break;
    }
}

void tkd_app_init(void)
{
    rx_len = 0;
    rx_overflow = 0;
    session = 0;
    tkd_port_init();
}

void tkd_app_feed_byte(uint8_t byte)
{
    if (byte == 0u) {
        if (rx_overflow) {
            send_error(0, TKD_ERR_TOO_LONG, 0, (int32_t)TKD_MAX_ENCODED);
        } else if (rx_len != 0u) {
            handle_frame();
        }
        rx_len = 0;
        rx_overflow = 0;
        return;
    }
    if (rx_len < sizeof rx_buf) {
        rx_buf[rx_len++] = byte;
    } else {
        rx_overflow = 1;
    }
}

void tkd_app_run(void)
{
    tkd_app_init();
    for (;;) {
        int c = tkd_port_uart_read_byte();
        if (c >= 0) {
            tkd_app_feed_byte((uint8_t)c);
        }
    }
}
