/*
 * SBPCA engine firmware driver (C99).
 *
 * Sequences one training batch on the engine through its register bank
 * (firmware/sbpca_regs.h, generated from hdl/regmap.py): configure, stream the
 * (x, delta) samples into the SAMPLE_DATA window, end the batch, wait for DONE,
 * read sigma (and optionally the factor pairs) from the FACTOR_DATA window,
 * trigger the k row/column updates, and check the sticky error flags.
 *
 * Register access goes only through the two platform functions handed to
 * sbpca_init(); they receive absolute bus addresses (base + register offset).
 * Nothing here allocates memory or keeps global state, so several engines (one
 * per layer) can be driven through several sbpca_dev_t handles.
 *
 * Every function returns SBPCA_OK (0) or a negative sbpca_status code; polling
 * loops are bounded by a poll budget (there is no clock in a portable driver).
 */
#ifndef SBPCA_DRIVER_H
#define SBPCA_DRIVER_H

#include <stdint.h>

#include "sbpca_regs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Platform register access: read or write one 32-bit word at a bus address. */
typedef uint32_t (*sbpca_read_fn)(uint32_t addr);
typedef void (*sbpca_write_fn)(uint32_t addr, uint32_t value);

/*
 * Optional platform block access: n words to / from ONE bus address (a FIFO window), as one
 * burst: a pipelined Wishbone block cycle (one request per clock), or a DMA transfer with a
 * fixed target address.  Without them (sbpca_set_block_ops not called, or NULL) the driver
 * moves a block with n single accesses, which works on any bus but at its single-access rate.
 */
typedef void (*sbpca_read_block_fn)(uint32_t addr, uint32_t *words, uint32_t n);
typedef void (*sbpca_write_block_fn)(uint32_t addr, const uint32_t *words, uint32_t n);

/* Most words one block transfer moves (the driver's staging buffer on the stack). */
#define SBPCA_BLOCK_WORDS 64u

typedef enum {
    SBPCA_OK = 0,
    SBPCA_ERR_ARG = -1,      /* a NULL pointer or an out-of-range argument */
    SBPCA_ERR_ID = -2,       /* ID.MAGIC / ID.VERSION do not match this driver */
    SBPCA_ERR_READBACK = -3, /* a configuration register did not read back */
    SBPCA_ERR_TIMEOUT = -4,  /* a poll budget ran out */
    SBPCA_ERR_RANGE = -5,    /* a sample value does not fit its format */
    SBPCA_ERR_HW = -6,       /* an engine error flag was raised (see ERRORS) */
    SBPCA_ERR_PROTOCOL = -7, /* a FIFO overflow/underflow or bus error was flagged */
    SBPCA_ERR_UPDATE = -8,   /* the update counter did not advance by k */
    SBPCA_ERR_STATE = -9     /* the engine is busy when it must be idle */
} sbpca_status;

/* One engine: its base address, the platform functions and what ID/DIMS/... read. */
typedef struct {
    uint32_t base;
    sbpca_read_fn read;
    sbpca_write_fn write;
    uint32_t rows;       /* a */
    uint32_t cols;       /* b */
    uint32_t rank;       /* k */
    uint32_t lanes;      /* P */
    uint32_t fifo_depth; /* words in each FIFO window */
    uint32_t x_bits, x_frac, delta_bits, delta_frac;
    uint32_t state_bits, state_frac, sigma_bits, sigma_frac;
    uint32_t max_batch;  /* most samples in one batch (MAX_BATCH) */
    uint32_t sample_elems; /* elements per SAMPLE_DATA word (PACKING.SAMPLE_ELEMS: 1 or 2) */
    uint32_t state_elems;  /* Delta/X elements per FACTOR_DATA / STATE_DATA word (PACKING.STATE_ELEMS) */
    sbpca_read_block_fn read_block;   /* NULL: single reads */
    sbpca_write_block_fn write_block; /* NULL: single writes */
} sbpca_dev_t;

/* Per-batch configuration (written by sbpca_configure). */
typedef struct {
    uint32_t batch_size; /* B, >= 1 */
    uint32_t sub_batch;  /* s, 1..B and < 65536 */
    uint32_t scheme;     /* SBPCA_SCHEME_STOCHASTIC or SBPCA_SCHEME_DETERMINISTIC */
    uint32_t manage;     /* update management on (1) / off (0) */
    uint32_t bl;         /* pulse-train length, 1..65535 */
    uint32_t lr_scale;   /* learning-rate scale, unsigned Q8.24 (SBPCA_LR_SCALE_FRAC) */
    uint32_t seed;       /* LFSR seed, non-zero */
} sbpca_config_t;

/* Counters and flags seen over one sbpca_train_batch call. */
typedef struct {
    uint32_t samples;
    uint32_t sub_batches;
    uint32_t cycles;
    uint32_t updates;
    uint32_t errors; /* ERRORS flags read (and cleared) at the end */
} sbpca_stats_t;

/* sizeof(sbpca_dev_t), for bindings that mirror the struct (ctypes). */
uint32_t sbpca_dev_size(void);

/* Bind a handle to a bank at `base`; reads ID (checked), DIMS, PARAMS, FORMAT_*, MAX_BATCH. */
int sbpca_init(sbpca_dev_t *dev, uint32_t base, sbpca_read_fn rd, sbpca_write_fn wr);

/* Raw register access relative to the bank's base (offset from sbpca_regs.h). */
uint32_t sbpca_read_reg(const sbpca_dev_t *dev, uint32_t offset);
void sbpca_write_reg(const sbpca_dev_t *dev, uint32_t offset, uint32_t value);

/*
 * Validate (1 <= B <= MAX_BATCH, 1 <= s <= B, scheme, BL, seed) and write the configuration,
 * read it back, clear the counters, pulse CTRL.CLEAR (the engine's sticky flags) and clear ERRORS.
 */
int sbpca_configure(const sbpca_dev_t *dev, const sbpca_config_t *cfg);

/* Pulse CTRL.START_BATCH (fails with SBPCA_ERR_STATE while the engine is busy). */
int sbpca_start_batch(const sbpca_dev_t *dev);

/* Install the optional block functions (after sbpca_init; either may be NULL). */
int sbpca_set_block_ops(sbpca_dev_t *dev, sbpca_read_block_fn rd, sbpca_write_block_fn wr);

/*
 * Stream n samples: x is n x cols, delta is n x rows, row-major integers in the
 * FORMAT_IN formats.  Per sample the x elements then the delta elements go into
 * SAMPLE_DATA, PACKING.SAMPLE_ELEMS per word (each vector starting a new word): after
 * each read of FIFO_STATUS.SAMPLE_SPACE, one block of that many words (at most
 * SBPCA_BLOCK_WORDS).  `max_polls` bounds the consecutive reads that find no space.
 */
int sbpca_stream_samples(const sbpca_dev_t *dev, const int32_t *x, const int32_t *delta,
                         uint32_t n, uint32_t max_polls);

/* Pulse CTRL.END_BATCH. */
int sbpca_end_batch(const sbpca_dev_t *dev);

/*
 * Poll STATUS until the engine and the drivers are idle: BUSY and UPD_BUSY both clear.
 * At most max_polls reads of STATUS (0 reads nothing); SBPCA_ERR_TIMEOUT when the budget
 * runs out with either bit still set.  sbpca_configure and sbpca_start_batch refuse to run
 * while busy (SBPCA_ERR_STATE); call this first where the engine may still be working
 * (after reset, or after an APPLY_UPDATE that was not waited for).
 */
int sbpca_wait_idle(const sbpca_dev_t *dev, uint32_t max_polls);

/* Poll STATUS until DONE is set and BUSY is clear (at most max_polls reads). */
int sbpca_wait_done(const sbpca_dev_t *dev, uint32_t max_polls);

/* Pulse CTRL.READ_SIGMA and read the k sigma words (sign-extended) into sigma[0..k-1]. */
int sbpca_read_sigma(const sbpca_dev_t *dev, int32_t *sigma, uint32_t capacity, uint32_t max_polls);

/*
 * Pulse CTRL.READ_FACTORS and read the k factor pairs: delta_f is k x rows and
 * x_f is k x cols (row c holds column c of Delta / X), integers in the state format.
 */
int sbpca_read_factors(const sbpca_dev_t *dev, int32_t *delta_f, int32_t *x_f, uint32_t max_polls);

/* Pulse CTRL.APPLY_UPDATE, wait for UPD_DONE, check UPDATES advanced by k. */
int sbpca_apply_updates(const sbpca_dev_t *dev, uint32_t max_polls);

/*
 * Read ERRORS into *flags (may be NULL) and clear the flags that were set.
 * Returns SBPCA_ERR_PROTOCOL for flags that void the batch (FIFO/bus protocol errors and
 * BATCH_LIMIT), SBPCA_ERR_HW for datapath flags (saturation, sigma guard, degenerate),
 * SBPCA_OK when no flag was set.
 */
int sbpca_check_errors(const sbpca_dev_t *dev, uint32_t *flags);

/*
 * One whole batch: wait until idle, configure (cfg->batch_size must equal n), start, stream, end,
 * wait for done, check errors, read sigma, apply the k updates, check errors.
 * sigma needs room for k words; stats may be NULL.  Engine flags found after the
 * batch are reported in stats->errors and as SBPCA_ERR_HW, after the updates
 * were applied (saturation is a datapath event, not a reason to drop a batch).
 */
int sbpca_train_batch(const sbpca_dev_t *dev, const sbpca_config_t *cfg, const int32_t *x,
                      const int32_t *delta, uint32_t n, int32_t *sigma, uint32_t capacity,
                      sbpca_stats_t *stats, uint32_t max_polls);

/*
 * Pulse CTRL.SOFT_RESET and wait until idle (at most max_polls STATUS reads).
 * Everything behind the register bank returns to reset: the open batch, readout and
 * update streams are dropped, the FIFOs flushed, the driver's LFSRs reseeded, and the
 * engine's control and sigma reset.  Its X/Delta memories keep stale contents, so
 * STATUS.STATE_VALID is 0 afterwards and START_BATCH is refused until a state has been
 * loaded with sbpca_load_state (for instance the last one sbpca_read_state returned).
 */
int sbpca_soft_reset(const sbpca_dev_t *dev, uint32_t max_polls);

/*
 * Write a complete engine state through STATE_DATA (never more than STATE_STATUS.SPACE
 * words at a time): for c = 0..k-1, delta_f[c*rows ..] then x_f[c*cols ..] (the layout of
 * sbpca_read_factors), then sigma[0..k-1]; then wait until STATE_VALID is set and the
 * engine is idle.  Only between batches.  Values out of the state / sigma formats give
 * SBPCA_ERR_RANGE before any write.
 */
int sbpca_load_state(const sbpca_dev_t *dev, const int32_t *delta_f, const int32_t *x_f,
                     const int32_t *sigma, uint32_t max_polls);

/* sbpca_read_sigma then sbpca_read_factors: the checkpoint that sbpca_load_state restores. */
int sbpca_read_state(const sbpca_dev_t *dev, int32_t *delta_f, int32_t *x_f, int32_t *sigma,
                     uint32_t max_polls);

/* A short English name of a status code. */
const char *sbpca_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif /* SBPCA_DRIVER_H */
