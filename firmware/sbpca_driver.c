/*
 * SBPCA engine firmware driver: see sbpca_driver.h for the contract.
 * C99; builds clean with gcc -std=c99 -Wall -Wextra -Werror -pedantic.
 */
#include "sbpca_driver.h"

#include <stddef.h>

/* Flags that mean words were lost or invented on the way: the batch is void. */
/* Flags that mean words were lost or invented on the way, or that the batch was larger
   than the engine can count (BATCH_LIMIT: sigma and the factors are wrong): the batch is void. */
#define PROTOCOL_FLAGS (SBPCA_ERRORS_PROTOCOL_MASK | SBPCA_ERRORS_SAMPLE_OVERFLOW_MASK | \
                        SBPCA_ERRORS_FACTOR_UNDERFLOW_MASK | SBPCA_ERRORS_BUS_ERROR_MASK | \
                        SBPCA_ERRORS_BATCH_LIMIT_MASK)

uint32_t sbpca_dev_size(void) { return (uint32_t)sizeof(sbpca_dev_t); }

uint32_t sbpca_read_reg(const sbpca_dev_t *dev, uint32_t offset)
{
    return dev->read(dev->base + offset);
}

void sbpca_write_reg(const sbpca_dev_t *dev, uint32_t offset, uint32_t value)
{
    dev->write(dev->base + offset, value);
}

/* Two's complement word -> int32_t without relying on implementation-defined casts. */
static int32_t to_signed(uint32_t word)
{
    if (word & 0x80000000u) {
        return -(int32_t)(~word) - 1;
    }
    return (int32_t)word;
}

static int fits_signed(int32_t value, uint32_t bits)
{
    int64_t lo, hi;
    if (bits == 0u || bits > 32u) {
        return 0;
    }
    lo = -((int64_t)1 << (bits - 1u));
    hi = ((int64_t)1 << (bits - 1u)) - 1;
    return (int64_t)value >= lo && (int64_t)value <= hi;
}

static void pulse(const sbpca_dev_t *dev, uint32_t mask)
{
    sbpca_write_reg(dev, SBPCA_CTRL, mask);
}

int sbpca_init(sbpca_dev_t *dev, uint32_t base, sbpca_read_fn rd, sbpca_write_fn wr)
{
    uint32_t id, dims, params, fin, fout, packing;
    if (dev == NULL || rd == NULL || wr == NULL || (base & 3u) != 0u) {
        return SBPCA_ERR_ARG;
    }
    dev->base = base;
    dev->read = rd;
    dev->write = wr;
    id = sbpca_read_reg(dev, SBPCA_ID);
    if (SBPCA_GET(ID_MAGIC, id) != SBPCA_ID_MAGIC || SBPCA_GET(ID_VERSION, id) != SBPCA_REGMAP_VERSION) {
        return SBPCA_ERR_ID;
    }
    dims = sbpca_read_reg(dev, SBPCA_DIMS);
    params = sbpca_read_reg(dev, SBPCA_PARAMS);
    fin = sbpca_read_reg(dev, SBPCA_FORMAT_IN);
    fout = sbpca_read_reg(dev, SBPCA_FORMAT_OUT);
    dev->rows = SBPCA_GET(DIMS_ROWS, dims);
    dev->cols = SBPCA_GET(DIMS_COLS, dims);
    dev->rank = SBPCA_GET(PARAMS_RANK, params);
    dev->lanes = SBPCA_GET(PARAMS_LANES, params);
    dev->fifo_depth = SBPCA_GET(PARAMS_FIFO_DEPTH, params);
    dev->x_bits = SBPCA_GET(FORMAT_IN_X_BITS, fin);
    dev->x_frac = SBPCA_GET(FORMAT_IN_X_FRAC, fin);
    dev->delta_bits = SBPCA_GET(FORMAT_IN_DELTA_BITS, fin);
    dev->delta_frac = SBPCA_GET(FORMAT_IN_DELTA_FRAC, fin);
    dev->state_bits = SBPCA_GET(FORMAT_OUT_STATE_BITS, fout);
    dev->state_frac = SBPCA_GET(FORMAT_OUT_STATE_FRAC, fout);
    dev->sigma_bits = SBPCA_GET(FORMAT_OUT_SIGMA_BITS, fout);
    dev->sigma_frac = SBPCA_GET(FORMAT_OUT_SIGMA_FRAC, fout);
    dev->max_batch = SBPCA_GET(MAX_BATCH_SAMPLES, sbpca_read_reg(dev, SBPCA_MAX_BATCH));
    packing = sbpca_read_reg(dev, SBPCA_PACKING);
    dev->sample_elems = SBPCA_GET(PACKING_SAMPLE_ELEMS, packing);
    dev->state_elems = SBPCA_GET(PACKING_STATE_ELEMS, packing);
    dev->read_block = NULL;
    dev->write_block = NULL;
    if (dev->sample_elems < 1u || dev->sample_elems > 2u || dev->state_elems < 1u || dev->state_elems > 2u) {
        return SBPCA_ERR_ID;
    }
    if (dev->rows == 0u || dev->cols == 0u || dev->rank == 0u || dev->fifo_depth == 0u || dev->max_batch == 0u ||
        !fits_signed(0, dev->x_bits) || !fits_signed(0, dev->delta_bits)) {
        return SBPCA_ERR_ID;
    }
    return SBPCA_OK;
}

int sbpca_configure(const sbpca_dev_t *dev, const sbpca_config_t *cfg)
{
    uint32_t upd;
    if (dev == NULL || cfg == NULL) {
        return SBPCA_ERR_ARG;
    }
    if (cfg->batch_size == 0u || cfg->batch_size > dev->max_batch || cfg->sub_batch == 0u ||
        cfg->sub_batch > cfg->batch_size ||
        cfg->sub_batch > (SBPCA_SUB_BATCH_SAMPLES_MASK >> SBPCA_SUB_BATCH_SAMPLES_SHIFT) ||
        (cfg->scheme != SBPCA_SCHEME_STOCHASTIC && cfg->scheme != SBPCA_SCHEME_DETERMINISTIC) ||
        cfg->manage > 1u || cfg->bl == 0u ||
        cfg->bl > (SBPCA_UPDATE_CFG_BL_MASK >> SBPCA_UPDATE_CFG_BL_SHIFT) || cfg->seed == 0u) {
        return SBPCA_ERR_ARG;
    }
    if (sbpca_read_reg(dev, SBPCA_STATUS) & (SBPCA_STATUS_BUSY_MASK | SBPCA_STATUS_UPD_BUSY_MASK)) {
        return SBPCA_ERR_STATE;
    }
    upd = SBPCA_PUT(UPDATE_CFG_SCHEME, cfg->scheme) | SBPCA_PUT(UPDATE_CFG_MANAGE, cfg->manage) |
          SBPCA_PUT(UPDATE_CFG_BL, cfg->bl);
    sbpca_write_reg(dev, SBPCA_BATCH_SIZE, SBPCA_PUT(BATCH_SIZE_SAMPLES, cfg->batch_size));
    sbpca_write_reg(dev, SBPCA_SUB_BATCH, SBPCA_PUT(SUB_BATCH_SAMPLES, cfg->sub_batch));
    sbpca_write_reg(dev, SBPCA_UPDATE_CFG, upd);
    sbpca_write_reg(dev, SBPCA_LR_SCALE, SBPCA_PUT(LR_SCALE_VALUE, cfg->lr_scale));
    sbpca_write_reg(dev, SBPCA_SEED, SBPCA_PUT(SEED_VALUE, cfg->seed));
    if (sbpca_read_reg(dev, SBPCA_BATCH_SIZE) != cfg->batch_size ||
        sbpca_read_reg(dev, SBPCA_SUB_BATCH) != cfg->sub_batch ||
        sbpca_read_reg(dev, SBPCA_UPDATE_CFG) != upd ||
        sbpca_read_reg(dev, SBPCA_LR_SCALE) != cfg->lr_scale ||
        sbpca_read_reg(dev, SBPCA_SEED) != cfg->seed) {
        return SBPCA_ERR_READBACK;
    }
    sbpca_write_reg(dev, SBPCA_SAMPLES, 0u);
    sbpca_write_reg(dev, SBPCA_SUB_BATCHES, 0u);
    sbpca_write_reg(dev, SBPCA_CYCLES, 0u);
    sbpca_write_reg(dev, SBPCA_UPDATES, 0u);
    pulse(dev, SBPCA_CTRL_CLEAR_MASK); /* the engine's sticky flags: ERRORS then describe this batch */
    sbpca_write_reg(dev, SBPCA_ERRORS, 0xFFFFFFFFu);
    return SBPCA_OK;
}

int sbpca_start_batch(const sbpca_dev_t *dev)
{
    if (dev == NULL) {
        return SBPCA_ERR_ARG;
    }
    if (sbpca_read_reg(dev, SBPCA_STATUS) & (SBPCA_STATUS_BUSY_MASK | SBPCA_STATUS_UPD_BUSY_MASK)) {
        return SBPCA_ERR_STATE;
    }
    pulse(dev, SBPCA_CTRL_START_BATCH_MASK);
    return SBPCA_OK;
}

int sbpca_set_block_ops(sbpca_dev_t *dev, sbpca_read_block_fn rd, sbpca_write_block_fn wr)
{
    if (dev == NULL) {
        return SBPCA_ERR_ARG;
    }
    dev->read_block = rd;
    dev->write_block = wr;
    return SBPCA_OK;
}

/* n words to one register (a FIFO window): one block transfer, or n single writes. */
static void write_words(const sbpca_dev_t *dev, uint32_t offset, const uint32_t *words, uint32_t n)
{
    uint32_t i;
    if (dev->write_block != NULL) {
        dev->write_block(dev->base + offset, words, n);
        return;
    }
    for (i = 0u; i < n; ++i) {
        sbpca_write_reg(dev, offset, words[i]);
    }
}

static void read_words_raw(const sbpca_dev_t *dev, uint32_t offset, uint32_t *words, uint32_t n)
{
    uint32_t i;
    if (dev->read_block != NULL) {
        dev->read_block(dev->base + offset, words, n);
        return;
    }
    for (i = 0u; i < n; ++i) {
        words[i] = sbpca_read_reg(dev, offset);
    }
}

/* Element i of a vector of `len` values in FIFO words of `per` elements (16-bit halves when 2). */
static uint32_t pack_word(const int32_t *v, uint32_t len, uint32_t first, uint32_t per)
{
    if (per == 1u) {
        return (uint32_t)v[first];
    }
    return ((uint32_t)v[first] & 0xFFFFu) |
           (first + 1u < len ? ((uint32_t)v[first + 1u] & 0xFFFFu) << 16 : 0u);
}

static int32_t unpack_half(uint32_t word, uint32_t which)
{
    uint32_t h = (word >> (16u * which)) & 0xFFFFu;
    return (h & 0x8000u) ? (int32_t)h - 65536 : (int32_t)h;
}

/* Words of one vector of `len` elements at `per` elements per word. */
static uint32_t vec_words(uint32_t len, uint32_t per)
{
    return (len + per - 1u) / per;
}

/* Read a FIFO_SPACE field until it is non-zero; 0 after max_polls reads that found none. */
static uint32_t wait_space(const sbpca_dev_t *dev, uint32_t offset, uint32_t mask, uint32_t shift,
                           uint32_t max_polls)
{
    uint32_t polls;
    for (polls = 0u; polls < max_polls; ++polls) {
        uint32_t space = (sbpca_read_reg(dev, offset) & mask) >> shift;
        if (space != 0u) {
            return space;
        }
    }
    return 0u;
}

int sbpca_stream_samples(const sbpca_dev_t *dev, const int32_t *x, const int32_t *delta,
                         uint32_t n, uint32_t max_polls)
{
    uint32_t buf[SBPCA_BLOCK_WORDS];
    uint32_t j, i, wx, wd, per, total, sent, sample, w;
    if (dev == NULL || x == NULL || delta == NULL || n == 0u) {
        return SBPCA_ERR_ARG;
    }
    /* Check every value before the first word goes out: a batch is all or nothing. */
    for (j = 0u; j < n; ++j) {
        for (i = 0u; i < dev->cols; ++i) {
            if (!fits_signed(x[(size_t)j * dev->cols + i], dev->x_bits)) {
                return SBPCA_ERR_RANGE;
            }
        }
        for (i = 0u; i < dev->rows; ++i) {
            if (!fits_signed(delta[(size_t)j * dev->rows + i], dev->delta_bits)) {
                return SBPCA_ERR_RANGE;
            }
        }
    }
    per = dev->sample_elems;
    wx = vec_words(dev->cols, per);
    wd = vec_words(dev->rows, per);
    total = n * (wx + wd);
    sample = 0u;
    w = 0u; /* word within the current sample */
    for (sent = 0u; sent < total;) {
        uint32_t space, block, b;
        space = wait_space(dev, SBPCA_FIFO_STATUS, SBPCA_FIFO_STATUS_SAMPLE_SPACE_MASK,
                           SBPCA_FIFO_STATUS_SAMPLE_SPACE_SHIFT, max_polls);
        if (space == 0u) {
            return SBPCA_ERR_TIMEOUT;
        }
        block = total - sent;
        if (block > space) block = space;
        if (block > SBPCA_BLOCK_WORDS) block = SBPCA_BLOCK_WORDS;
        for (b = 0u; b < block; ++b) {
            if (w < wx) {
                buf[b] = pack_word(x + (size_t)sample * dev->cols, dev->cols, w * per, per);
            } else {
                buf[b] = pack_word(delta + (size_t)sample * dev->rows, dev->rows, (w - wx) * per, per);
            }
            if (++w == wx + wd) {
                w = 0u;
                ++sample;
            }
        }
        write_words(dev, SBPCA_SAMPLE_DATA, buf, block);
        sent += block;
    }
    return SBPCA_OK;
}

int sbpca_end_batch(const sbpca_dev_t *dev)
{
    if (dev == NULL) {
        return SBPCA_ERR_ARG;
    }
    pulse(dev, SBPCA_CTRL_END_BATCH_MASK);
    return SBPCA_OK;
}

/* Read STATUS until (STATUS & mask) == want, at most max_polls reads (the one polling loop). */
static int poll_status(const sbpca_dev_t *dev, uint32_t mask, uint32_t want, uint32_t max_polls)
{
    uint32_t polls;
    for (polls = 0u; polls < max_polls; ++polls) {
        if ((sbpca_read_reg(dev, SBPCA_STATUS) & mask) == want) {
            return SBPCA_OK;
        }
    }
    return SBPCA_ERR_TIMEOUT;
}

int sbpca_wait_idle(const sbpca_dev_t *dev, uint32_t max_polls)
{
    if (dev == NULL) {
        return SBPCA_ERR_ARG;
    }
    return poll_status(dev, SBPCA_STATUS_BUSY_MASK | SBPCA_STATUS_UPD_BUSY_MASK, 0u, max_polls);
}

int sbpca_wait_done(const sbpca_dev_t *dev, uint32_t max_polls)
{
    if (dev == NULL) {
        return SBPCA_ERR_ARG;
    }
    return poll_status(dev, SBPCA_STATUS_DONE_MASK | SBPCA_STATUS_BUSY_MASK, SBPCA_STATUS_DONE_MASK,
                       max_polls);
}

/*
 * Pop the `count` elements of one vector from FACTOR_DATA into out[0..count-1], `per`
 * elements per word: after each read of FIFO_STATUS.FACTOR_LEVEL, one block of that many words.
 */
static int read_vector(const sbpca_dev_t *dev, int32_t *out, uint32_t count, uint32_t per, uint32_t max_polls)
{
    uint32_t buf[SBPCA_BLOCK_WORDS];
    uint32_t words = vec_words(count, per), got = 0u, polls = 0u, e = 0u;
    while (got < words) {
        uint32_t level, block, b;
        level = SBPCA_GET(FIFO_STATUS_FACTOR_LEVEL, sbpca_read_reg(dev, SBPCA_FIFO_STATUS));
        if (level == 0u) {
            if (++polls >= max_polls) {
                return SBPCA_ERR_TIMEOUT;
            }
            continue;
        }
        polls = 0u;
        block = words - got;
        if (block > level) block = level;
        if (block > SBPCA_BLOCK_WORDS) block = SBPCA_BLOCK_WORDS;
        read_words_raw(dev, SBPCA_FACTOR_DATA, buf, block);
        for (b = 0u; b < block; ++b) {
            if (per == 1u) {
                out[e++] = to_signed(buf[b]);
            } else {
                out[e++] = unpack_half(buf[b], 0u);
                if (e < count) {
                    out[e++] = unpack_half(buf[b], 1u);
                }
            }
        }
        got += block;
    }
    return SBPCA_OK;
}

int sbpca_read_sigma(const sbpca_dev_t *dev, int32_t *sigma, uint32_t capacity, uint32_t max_polls)
{
    if (dev == NULL || sigma == NULL || capacity < dev->rank) {
        return SBPCA_ERR_ARG;
    }
    pulse(dev, SBPCA_CTRL_READ_SIGMA_MASK);
    return read_vector(dev, sigma, dev->rank, 1u, max_polls);
}

int sbpca_read_factors(const sbpca_dev_t *dev, int32_t *delta_f, int32_t *x_f, uint32_t max_polls)
{
    uint32_t c;
    int status;
    if (dev == NULL || delta_f == NULL || x_f == NULL) {
        return SBPCA_ERR_ARG;
    }
    pulse(dev, SBPCA_CTRL_READ_FACTORS_MASK);
    for (c = 0u; c < dev->rank; ++c) {
        status = read_vector(dev, delta_f + (size_t)c * dev->rows, dev->rows, dev->state_elems, max_polls);
        if (status != SBPCA_OK) {
            return status;
        }
        status = read_vector(dev, x_f + (size_t)c * dev->cols, dev->cols, dev->state_elems, max_polls);
        if (status != SBPCA_OK) {
            return status;
        }
    }
    return SBPCA_OK;
}

int sbpca_apply_updates(const sbpca_dev_t *dev, uint32_t max_polls)
{
    uint32_t before;
    int status;
    if (dev == NULL) {
        return SBPCA_ERR_ARG;
    }
    if (sbpca_read_reg(dev, SBPCA_STATUS) & SBPCA_STATUS_UPD_BUSY_MASK) {
        return SBPCA_ERR_STATE;
    }
    before = sbpca_read_reg(dev, SBPCA_UPDATES);
    pulse(dev, SBPCA_CTRL_APPLY_UPDATE_MASK);
    status = poll_status(dev, SBPCA_STATUS_UPD_DONE_MASK | SBPCA_STATUS_UPD_BUSY_MASK,
                         SBPCA_STATUS_UPD_DONE_MASK, max_polls);
    if (status != SBPCA_OK) {
        return status;
    }
    return sbpca_read_reg(dev, SBPCA_UPDATES) - before == dev->rank ? SBPCA_OK : SBPCA_ERR_UPDATE;
}

int sbpca_check_errors(const sbpca_dev_t *dev, uint32_t *flags)
{
    uint32_t errors;
    if (dev == NULL) {
        return SBPCA_ERR_ARG;
    }
    errors = sbpca_read_reg(dev, SBPCA_ERRORS);
    if (errors != 0u) {
        sbpca_write_reg(dev, SBPCA_ERRORS, errors); /* clear exactly what was seen */
    }
    if (flags != NULL) {
        *flags = errors;
    }
    if (errors & PROTOCOL_FLAGS) {
        return SBPCA_ERR_PROTOCOL;
    }
    return errors != 0u ? SBPCA_ERR_HW : SBPCA_OK;
}

int sbpca_train_batch(const sbpca_dev_t *dev, const sbpca_config_t *cfg, const int32_t *x,
                      const int32_t *delta, uint32_t n, int32_t *sigma, uint32_t capacity,
                      sbpca_stats_t *stats, uint32_t max_polls)
{
    int status, flags_status;
    uint32_t flags = 0u, more = 0u;
    if (dev == NULL || cfg == NULL || x == NULL || delta == NULL || sigma == NULL || n == 0u ||
        cfg->batch_size != n || capacity < dev->rank) {
        return SBPCA_ERR_ARG;
    }
    /* the engine may still be finishing earlier work (after reset it computes its first
       reciprocals; a previous batch's updates may still be leaving): wait, bounded */
    status = sbpca_wait_idle(dev, max_polls);
    if (status == SBPCA_OK) status = sbpca_configure(dev, cfg);
    if (status == SBPCA_OK) status = sbpca_start_batch(dev);
    if (status == SBPCA_OK) status = sbpca_stream_samples(dev, x, delta, n, max_polls);
    if (status == SBPCA_OK) status = sbpca_end_batch(dev);
    if (status == SBPCA_OK) status = sbpca_wait_done(dev, max_polls);
    if (status != SBPCA_OK) {
        return status;
    }
    flags_status = sbpca_check_errors(dev, &flags);
    if (flags_status == SBPCA_ERR_PROTOCOL) {
        if (stats != NULL) {
            stats->errors = flags;
        }
        return flags_status; /* words were lost: never apply this batch */
    }
    status = sbpca_read_sigma(dev, sigma, capacity, max_polls);
    if (status == SBPCA_OK) status = sbpca_apply_updates(dev, max_polls);
    if (status == SBPCA_OK) {
        int late = sbpca_check_errors(dev, &more);
        flags |= more;
        if (late == SBPCA_ERR_PROTOCOL) {
            status = late;
        } else if (flags != 0u) {
            status = SBPCA_ERR_HW;
        }
    }
    if (stats != NULL) {
        stats->samples = sbpca_read_reg(dev, SBPCA_SAMPLES);
        stats->sub_batches = sbpca_read_reg(dev, SBPCA_SUB_BATCHES);
        stats->cycles = sbpca_read_reg(dev, SBPCA_CYCLES);
        stats->updates = sbpca_read_reg(dev, SBPCA_UPDATES);
        stats->errors = flags;
    }
    return status;
}

int sbpca_soft_reset(const sbpca_dev_t *dev, uint32_t max_polls)
{
    if (dev == NULL) {
        return SBPCA_ERR_ARG;
    }
    pulse(dev, SBPCA_CTRL_SOFT_RESET_MASK);
    return sbpca_wait_idle(dev, max_polls);
}

/* Write one vector (`len` elements, `per` per word) into STATE_DATA in blocks of STATE_STATUS.SPACE words. */
static int write_state_vector(const sbpca_dev_t *dev, const int32_t *v, uint32_t len, uint32_t per,
                              uint32_t max_polls)
{
    uint32_t buf[SBPCA_BLOCK_WORDS];
    uint32_t words = vec_words(len, per), sent = 0u;
    while (sent < words) {
        uint32_t space, block, b;
        space = wait_space(dev, SBPCA_STATE_STATUS, SBPCA_STATE_STATUS_SPACE_MASK, SBPCA_STATE_STATUS_SPACE_SHIFT,
                           max_polls);
        if (space == 0u) {
            return SBPCA_ERR_TIMEOUT;
        }
        block = words - sent;
        if (block > space) block = space;
        if (block > SBPCA_BLOCK_WORDS) block = SBPCA_BLOCK_WORDS;
        for (b = 0u; b < block; ++b) {
            buf[b] = pack_word(v, len, (sent + b) * per, per);
        }
        write_words(dev, SBPCA_STATE_DATA, buf, block);
        sent += block;
    }
    return SBPCA_OK;
}

int sbpca_load_state(const sbpca_dev_t *dev, const int32_t *delta_f, const int32_t *x_f,
                     const int32_t *sigma, uint32_t max_polls)
{
    uint32_t c, i;
    int status = SBPCA_OK;
    if (dev == NULL || delta_f == NULL || x_f == NULL || sigma == NULL) {
        return SBPCA_ERR_ARG;
    }
    for (c = 0u; c < dev->rank; ++c) {
        for (i = 0u; i < dev->rows; ++i) {
            if (!fits_signed(delta_f[(size_t)c * dev->rows + i], dev->state_bits)) {
                return SBPCA_ERR_RANGE;
            }
        }
        for (i = 0u; i < dev->cols; ++i) {
            if (!fits_signed(x_f[(size_t)c * dev->cols + i], dev->state_bits)) {
                return SBPCA_ERR_RANGE;
            }
        }
        if (!fits_signed(sigma[c], dev->sigma_bits)) {
            return SBPCA_ERR_RANGE;
        }
    }
    for (c = 0u; c < dev->rank && status == SBPCA_OK; ++c) {
        status = write_state_vector(dev, delta_f + (size_t)c * dev->rows, dev->rows, dev->state_elems, max_polls);
        if (status == SBPCA_OK) {
            status = write_state_vector(dev, x_f + (size_t)c * dev->cols, dev->cols, dev->state_elems, max_polls);
        }
    }
    if (status == SBPCA_OK) {
        status = write_state_vector(dev, sigma, dev->rank, 1u, max_polls);
    }
    if (status != SBPCA_OK) {
        return status;
    }
    return poll_status(dev, SBPCA_STATUS_STATE_VALID_MASK | SBPCA_STATUS_BUSY_MASK, SBPCA_STATUS_STATE_VALID_MASK,
                       max_polls);
}

int sbpca_read_state(const sbpca_dev_t *dev, int32_t *delta_f, int32_t *x_f, int32_t *sigma,
                     uint32_t max_polls)
{
    int status;
    if (dev == NULL || delta_f == NULL || x_f == NULL || sigma == NULL) {
        return SBPCA_ERR_ARG;
    }
    status = sbpca_read_sigma(dev, sigma, dev->rank, max_polls);
    return status == SBPCA_OK ? sbpca_read_factors(dev, delta_f, x_f, max_polls) : status;
}

const char *sbpca_strerror(int status)
{
    switch (status) {
    case SBPCA_OK: return "ok";
    case SBPCA_ERR_ARG: return "bad argument";
    case SBPCA_ERR_ID: return "register bank ID/version mismatch";
    case SBPCA_ERR_READBACK: return "configuration read-back mismatch";
    case SBPCA_ERR_TIMEOUT: return "poll budget exhausted";
    case SBPCA_ERR_RANGE: return "sample value out of format range";
    case SBPCA_ERR_HW: return "engine error flag raised";
    case SBPCA_ERR_PROTOCOL: return "FIFO or bus protocol error";
    case SBPCA_ERR_UPDATE: return "update counter did not advance by k";
    case SBPCA_ERR_STATE: return "engine busy";
    default: return "unknown status";
    }
}
