/* synth.c — seeded synthetic instruction data made from tuna's own word lists
 * (no outside text), for the demo and tests: a behaviour a story model does
 * not have until it is fine-tuned. "story-json": a short story-like passage
 * in, the facts of it out as strict JSON with fixed keys. Every passage is
 * distinct across the train, validation and eval splits.
 * "story-json-prefs": preference pairs for the same task on harder stories,
 * which also name a second child (a distractor the SFT data never shows):
 * chosen is the correct concise JSON; rejected names the other child (most
 * pairs), wraps the answer in chatter, or is malformed JSON. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "io/atomic_file.h"
#include "tuna_data.h"
#include "core/error.h"

static const char *const NAMES[] = {"Lily", "Tom", "Ben", "Sue", "Max", "Anna", "Tim", "Mia", "Sam", "Lucy", "Jack", "Amy",
                                    "Bob", "Kate", "Joe", "Zoe", "Mark", "Emma", "Leo", "Sara"};
static const int NAME_IS_GIRL[] = {1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1};
static const char *const ANIMALS[] = {"dog", "cat", "bird", "frog", "rabbit", "duck", "fish", "horse", "bear", "mouse", "cow", "fox"};
static const char *const PLACES[] = {"park", "garden", "forest", "beach", "farm", "lake", "school", "zoo", "river", "hill", "town", "yard"};
static const char *const FEELINGS[] = {"happy", "sad", "scared", "excited", "angry", "tired", "proud", "surprised", "calm", "curious"};
#define COUNT(a) ((int)(sizeof a / sizeof *a))

/* {d} the distractor child, {g} his/her (same letters as put() knows) */
static const char *const DISTRACT[] = {
    "{d} stayed at home.",
    "{d} was reading a book.",
    "{d} waved from far away.",
    "{d} could not come that day.",
    "{d} was busy with {g} homework.",
};
static const char *const CHATTER[][2] = {
    {"Sure! Here is the answer in JSON: ", " I hope this helps!"},
    {"Of course. ", "\nLet me know if you need anything else."},
    {"Here you go:\n", "\nThat is what happened in the story."},
};

/* {w} who, {a} animal, {p} place, {h} his/her */
static const char *const MEET[] = {
    "{w} went to the {p} with {h} {a}.",
    "One day, {w} saw a {a} at the {p}.",
    "{w} and a little {a} played in the {p}.",
    "At the {p}, {w} found a small {a}.",
    "{w} took {h} {a} to the {p} in the morning.",
    "There was a {a} at the {p}, and {w} ran to see it.",
};
static const char *const FEEL[] = {
    "{w} felt very {f}.",
    "The {a} made {w} feel {f}.",
    "{w} was {f} all day.",
    "After that, {w} felt {f}.",
    "{w} smiled and said, \"I am so {f}!\"",
};
static const char *const EXTRA[] = {
    "The sun was warm and bright.", "It was a big day.", "The sky was blue.", "They ran and jumped.",
    "The wind was soft.", "Mom called from far away.", "There were many flowers.", "It started to rain a little.",
};

static const char *dis_d, *dis_g; /* distractor fillers for put() (one thread writes a file at a time) */

static void put(char *out, size_t cap, const char *tmpl, const char *w, const char *a, const char *p, const char *h, const char *f) {
    size_t n = strlen(out);
    for (const char *s = tmpl; *s && n + 1 < cap; s++) {
        const char *r = NULL;
        if (s[0] == '{' && s[1] && s[2] == '}') {
            switch (s[1]) {
            case 'w': r = w; break;
            case 'a': r = a; break;
            case 'p': r = p; break;
            case 'h': r = h; break;
            case 'f': r = f; break;
            case 'd': r = dis_d; break;
            case 'g': r = dis_g; break;
            }
        }
        if (r) {
            size_t k = strlen(r);
            if (n + k + 1 >= cap) break;
            memcpy(out + n, r, k);
            n += k;
            s += 2;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = 0;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

/* open-addressing set of passage hashes (all splits share it) */
typedef struct { uint64_t *k; size_t cap; } hset;
static int hset_add(hset *s, uint64_t h) {
    for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->k[i] == h) return 0;
        if (!s->k[i]) { s->k[i] = h; return 1; }
    }
}

static tuna_status write_split(const char *dir, const char *name, int n, tuna_rng *rng, hset *seen, int prefs) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.jsonl", dir, name);
    atomic_file out;
    tuna_status st = atomic_file_open(&out, path);
    if (st != TUNA_OK) return st;
    FILE *f = out.f;
    int ok = 1, tries = 0;
    for (int i = 0; i < n && ok;) {
        if (++tries > 100 * n + 1000) { atomic_file_abort(&out); return core_fail(TUNA_ERR_ARG, "story-json: not enough distinct passages for %d examples", n); }
        int wi = (int)(rng_u32(rng) % COUNT(NAMES)), ai = (int)(rng_u32(rng) % COUNT(ANIMALS));
        int pi = (int)(rng_u32(rng) % COUNT(PLACES)), fi = (int)(rng_u32(rng) % COUNT(FEELINGS));
        const char *w = NAMES[wi], *a = ANIMALS[ai], *p = PLACES[pi], *fe = FEELINGS[fi], *h = NAME_IS_GIRL[wi] ? "her" : "his";
        char passage[1024] = "";
        int di = 0, dis_first = 0;
        if (prefs) {
            di = (wi + 1 + (int)(rng_u32(rng) % (COUNT(NAMES) - 1))) % COUNT(NAMES);
            dis_d = NAMES[di];
            dis_g = NAME_IS_GIRL[di] ? "her" : "his";
            dis_first = rng_u32(rng) % 10 < 7; /* usually before the main character: the harder case */
            if (dis_first) {
                put(passage, sizeof passage, DISTRACT[rng_u32(rng) % COUNT(DISTRACT)], w, a, p, h, fe);
                put(passage, sizeof passage, " ", w, a, p, h, fe);
            }
        }
        put(passage, sizeof passage, MEET[rng_u32(rng) % COUNT(MEET)], w, a, p, h, fe);
        if (prefs && !dis_first) {
            put(passage, sizeof passage, " ", w, a, p, h, fe);
            put(passage, sizeof passage, DISTRACT[rng_u32(rng) % COUNT(DISTRACT)], w, a, p, h, fe);
        }
        int extras = (int)(rng_u32(rng) % 3); /* 0..2 sentences that name none of the facts */
        int e0 = (int)(rng_u32(rng) % COUNT(EXTRA));
        for (int e = 0; e < extras; e++) {
            put(passage, sizeof passage, " ", w, a, p, h, fe);
            put(passage, sizeof passage, EXTRA[(e0 + 3 * e) % COUNT(EXTRA)], w, a, p, h, fe);
        }
        put(passage, sizeof passage, " ", w, a, p, h, fe);
        put(passage, sizeof passage, FEEL[rng_u32(rng) % COUNT(FEEL)], w, a, p, h, fe);
        if (!hset_add(seen, hash_str(passage))) continue;
        char instruction[1400], answer[256];
        snprintf(instruction, sizeof instruction,
                 "Read the story and answer in JSON with the keys \"who\", \"animal\", \"where\" and \"feeling\".\n\nStory: %s", passage);
        snprintf(answer, sizeof answer, "{\"who\": \"%s\", \"animal\": \"%s\", \"where\": \"%s\", \"feeling\": \"%s\"}", w, a, p, fe);
        json_t *rec;
        if (prefs) {
            char rejected[512];
            unsigned kind = rng_u32(rng) % 10;
            if (kind < 6) { /* the other child as "who" */
                snprintf(rejected, sizeof rejected, "{\"who\": \"%s\", \"animal\": \"%s\", \"where\": \"%s\", \"feeling\": \"%s\"}",
                         NAMES[di], a, p, fe);
            } else if (kind < 8) { /* right facts, wrapped in chatter */
                int c = (int)(rng_u32(rng) % COUNT(CHATTER));
                snprintf(rejected, sizeof rejected, "%s%s%s", CHATTER[c][0], answer, CHATTER[c][1]);
            } else { /* malformed: single quotes, a missing brace, or no quotes on values */
                unsigned how = rng_u32(rng) % 3;
                if (how == 0) snprintf(rejected, sizeof rejected, "{'who': '%s', 'animal': '%s', 'where': '%s', 'feeling': '%s'}", w, a, p, fe);
                else if (how == 1) snprintf(rejected, sizeof rejected, "{\"who\": \"%s\", \"animal\": \"%s\", \"where\": \"%s\", \"feeling\": \"%s\"", w, a, p, fe);
                else snprintf(rejected, sizeof rejected, "{\"who\": %s, \"animal\": %s, \"where\": %s, \"feeling\": %s}", w, a, p, fe);
            }
            rec = json_pack("{s:[{s:s,s:s}],s:[{s:s,s:s}],s:[{s:s,s:s}]}", "prompt", "role", "user", "content", instruction, "chosen",
                            "role", "assistant", "content", answer, "rejected", "role", "assistant", "content", rejected);
        } else
            rec = json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "messages", "role", "user", "content", instruction, "role",
                            "assistant", "content", answer);
        char *line = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
        ok = line && fputs(line, f) != EOF && fputc('\n', f) != EOF;
        free(line);
        json_decref(rec);
        i++;
    }
    int e = errno ? errno : EIO;
    if (ok) return atomic_file_commit(&out);
    atomic_file_abort(&out);
    return atomic_write_failed(path, e);
}

tuna_status tuna_synth_task(const char *task, const char *out_dir, int n_train, int n_val, int n_eval, uint64_t seed) {
    int prefs = !strcmp(task, "story-json-prefs");
    if (strcmp(task, "story-json") && !prefs)
        return core_fail(TUNA_ERR_ARG, "unknown synthetic task '%s' (known: story-json, story-json-prefs)", task);
    if (n_train < 0 || n_val < 0 || n_eval < 0) return core_fail(TUNA_ERR_ARG, "negative split size");
    size_t total = (size_t)n_train + (size_t)n_val + (size_t)n_eval, cap = 1024;
    while (cap < 4 * total) cap *= 2;
    hset seen = {calloc(cap, sizeof(uint64_t)), cap};
    if (!seen.k) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    /* one stream per split, so a split's size does not change the others' text */
    tuna_rng r;
    tuna_status st;
    uint64_t base = prefs ? 10 : 0; /* other streams: preference passages are other stories */
    rng_seed(&r, seed, base + 3);
    st = write_split(out_dir, "eval", n_eval, &r, &seen, prefs);
    rng_seed(&r, seed, base + 2);
    if (st == TUNA_OK) st = write_split(out_dir, "val", n_val, &r, &seen, prefs);
    rng_seed(&r, seed, base + 1);
    if (st == TUNA_OK) st = write_split(out_dir, "train", n_train, &r, &seen, prefs);
    free(seen.k);
    return st;
}
