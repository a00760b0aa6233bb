/* split.c — `tuna data split`: train/validation split by hash. A record goes
 * to validation when the seeded hash of its normalised canonical text
 * (tuna_record_text), read as a number in [0, 1), is below the fraction. The
 * decision depends only on the record and the seed: the same on every run,
 * independent of the order of the file, and identical records (after
 * normalisation) always land on the same side, so no example leaks from
 * training into validation. Records are written byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "core/mix.h"
#include "data/data_io.h"
#include "tuna.h"
#include "core/error.h"

static double unit_hash(const char *t, size_t n, uint64_t seed) {
    uint64_t h = data_hash64(t, n, core_mix64(seed ^ 0x73706c6974ULL));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0); /* top 53 bits */
}

int tuna_record_is_val(const tuna_record *rec, double val_fraction, uint64_t seed) {
    char *t = NULL;
    size_t n = 0;
    if (tuna_record_text(rec, 1, &t, &n)) return 0;
    int v = unit_hash(t, n, seed) < val_fraction;
    free(t);
    return v;
}

tuna_status tuna_data_split(const char *in_path, const char *train_path, const char *val_path, double val_fraction,
                            uint64_t seed, const tuna_data_options *opts, tuna_split_stats *stats) {
    tuna_split_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!(val_fraction >= 0 && val_fraction <= 1))
        return core_fail(TUNA_ERR_ARG, "validation fraction %g must be in [0, 1]", val_fraction);
    tuna_data_reader *rd = NULL;
    atomic_file tr = {0}, va = {0};
    tuna_record rec;
    memset(&rec, 0, sizeof rec);
    tuna_status st = tuna_data_reader_open(&rd, in_path, opts);
    if (!st) st = atomic_file_open(&tr, train_path);
    if (!st) st = atomic_file_open(&va, val_path);
    while (!st) {
        int got;
        st = tuna_data_reader_next(rd, &rec, &got);
        if (st || !got) break;
        char *t = NULL;
        size_t n = 0;
        if ((st = tuna_record_text(&rec, 1, &t, &n))) break;
        int is_val = unit_hash(t, n, seed) < val_fraction;
        free(t);
        if (is_val) stats->val++;
        else stats->train++;
        st = data_out_line(is_val ? &va : &tr, rec.raw, rec.raw_len);
    }
    tuna_record_clear(&rec);
    if (rd) tuna_data_reader_stats(rd, &stats->data);
    tuna_data_reader_free(rd);
    if (!st) st = atomic_file_commit(&tr);
    if (!st) st = atomic_file_commit(&va);
    atomic_file_abort(&tr);
    atomic_file_abort(&va);
    return st;
}
