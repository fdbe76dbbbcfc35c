/*
 * tinykd keyword-spotting frontend: 1 s of 16 kHz int16 audio -> 49 x 10 int8 MFCC.
 *
 * One implementation for host and device. Integer arithmetic only (no float, no malloc,
 * no library beyond <stdint.h>/<stddef.h>/<string.h>), so an x86 host and a Cortex-M
 * produce the same bytes. The pipeline is described in README.md next to this file.
 *
 * Quantisation of the output (the model's int8 input tensor):
 *     mfcc_real = TKD_FRONTEND_SCALE * (q - TKD_FRONTEND_ZERO_POINT)
 * where mfcc_real is the orthonormal DCT-II of the natural log of the mel band energies of
 * the audio read as float in [-1, 1). Set the model's input quantisation to exactly these
 * two constants.
 */
#ifndef TKD_FRONTEND_H
#define TKD_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TKD_FRONTEND_VERSION 2

#define TKD_FRONTEND_SAMPLE_RATE  16000
#define TKD_FRONTEND_CLIP_SAMPLES 16000 /* 1 s */
#define TKD_FRONTEND_WINDOW       640   /* 40 ms */
#define TKD_FRONTEND_STRIDE       320   /* 20 ms */
#define TKD_FRONTEND_FFT_SIZE     1024
#define TKD_FRONTEND_NUM_FRAMES   49 /* (16000 - 640) / 320 + 1 */
#define TKD_FRONTEND_NUM_MEL      40
#define TKD_FRONTEND_NUM_MFCC     10
#define TKD_FRONTEND_NUM_FEATURES (TKD_FRONTEND_NUM_FRAMES * TKD_FRONTEND_NUM_MFCC)
#define TKD_FRONTEND_MEL_LOW_HZ   20
#define TKD_FRONTEND_MEL_HIGH_HZ  4000
/* Mel band energies (power of the float-scaled audio) are floored at 2^-TKD_FRONTEND_LOG2_FLOOR. */
#define TKD_FRONTEND_LOG2_FLOOR 20

/* int8 output quantisation (see above). Read by tools; not used in the arithmetic, which
 * has 1/SCALE folded into its generated DCT table (tkd_frontend_tables.h). */
#define TKD_FRONTEND_SCALE      0.5f
#define TKD_FRONTEND_ZERO_POINT 45

/* Working memory for one frame (6 KiB). Pass your own to stay re-entrant (it may share RAM
 * with the model's arena: it is dead between calls); NULL selects a static instance (not
 * re-entrant). Build with -DTKD_FRONTEND_STATIC_SCRATCH=0 to drop that static instance and
 * its 6 KiB; then scratch must not be NULL. */
#ifndef TKD_FRONTEND_STATIC_SCRATCH
#define TKD_FRONTEND_STATIC_SCRATCH 1
#endif
typedef struct {
    int32_t fft[TKD_FRONTEND_FFT_SIZE]; /* 512 complex values, interleaved re, im */
    uint64_t power[TKD_FRONTEND_FFT_SIZE / 4];
} tkd_frontend_scratch;

/* One frame: TKD_FRONTEND_WINDOW samples in, TKD_FRONTEND_NUM_MFCC int8 out. */
void tkd_frontend_frame(const int16_t *window, int8_t *out, tkd_frontend_scratch *scratch);

/* One clip: TKD_FRONTEND_CLIP_SAMPLES samples in, TKD_FRONTEND_NUM_FEATURES int8 out
 * (frame-major: features[frame * 10 + coefficient]). */
void tkd_frontend_run(const int16_t *audio, int8_t *features, tkd_frontend_scratch *scratch);

/* n clips back to back (the host's batch entry point). */
void tkd_frontend_run_batch(const int16_t *audio, int8_t *features, uint32_t n,
                            tkd_frontend_scratch *scratch);

/* Streaming: push TKD_FRONTEND_STRIDE new samples at a time. Once a whole window has been
 * seen, every push returns 1 and writes one frame of TKD_FRONTEND_NUM_MFCC values (the
 * same bytes tkd_frontend_run gives for that window); before that it returns 0. */
typedef struct {
    int16_t history[TKD_FRONTEND_WINDOW];
    uint32_t pushed; /* hops pushed so far, saturating */
} tkd_frontend_stream;

void tkd_frontend_stream_init(tkd_frontend_stream *stream);
int tkd_frontend_stream_push(tkd_frontend_stream *stream, const int16_t *hop, int8_t *out,
                             tkd_frontend_scratch *scratch);

#ifdef __cplusplus
}
#endif

#endif /* TKD_FRONTEND_H */
