/* test_atomic_dir.c — atomic_dir_replace (io/atomic_file.h), what `tuna merge
 * / export / convert … --overwrite` publish a folder with: the new folder
 * takes the old one's name in one step and the old one is left under the
 * temporary name for the caller to remove; when it fails, the old folder is
 * untouched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "check.h"
#include "io/atomic_file.h"

static char root[256];

static void put(const char *dir, const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) { fputs(text, f); fclose(f); }
}

/* the first line of dir/name, or "" when it cannot be read */
static const char *get(const char *dir, const char *name) {
    static char buf[64];
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    buf[0] = '\0';
    FILE *f = fopen(p, "r");
    if (f) { if (!fgets(buf, sizeof buf, f)) buf[0] = '\0'; fclose(f); }
    return buf;
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/tuna_atomic_dir_%d", (int)getpid());
    char dir[300], tmp[300], cmd[400];
    snprintf(dir, sizeof dir, "%s/out", root);
    snprintf(tmp, sizeof tmp, "%s/.out.tmp", root);
    mkdir(root, 0755);
    mkdir(dir, 0755);
    mkdir(tmp, 0755);
    put(dir, "old.txt", "old");
    put(tmp, "new.txt", "new");

    /* the swap: dir holds the new content, tmp the old */
    int exchanged = 0;
    CHECK(atomic_dir_replace(tmp, dir, &exchanged) == TUNA_OK);
    CHECK(exchanged == 1);
    CHECKF(!strcmp(get(dir, "new.txt"), "new"), "new content in place: '%s'", get(dir, "new.txt"));
    CHECK(access(dir, F_OK) == 0 && strcmp(get(dir, "old.txt"), "old") != 0);
    CHECKF(!strcmp(get(tmp, "old.txt"), "old"), "old content under the temporary name: '%s'", get(tmp, "old.txt"));

    /* a failed replace (nothing to publish) leaves dir as it was */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    CHECK(atomic_dir_replace(tmp, dir, &exchanged) != TUNA_OK);
    CHECK(strstr(tuna_last_error(), ".out.tmp") != NULL);
    CHECK(!strcmp(get(dir, "new.txt"), "new"));

    /* the lowest level refuses outputs that are not regular files (a FIFO,
     * as a device would be): nothing is created, the FIFO stays */
    char fifo[320];
    snprintf(fifo, sizeof fifo, "%s/pipe", root);
    CHECK(mkfifo(fifo, 0644) == 0);
    atomic_file af;
    CHECK(atomic_file_open(&af, fifo) != TUNA_OK);
    CHECKF(strstr(tuna_last_error(), "FIFO") != NULL, "names the FIFO: %s", tuna_last_error());
    mkdir(tmp, 0755);
    CHECK(atomic_dir_commit(tmp, fifo) != TUNA_OK);
    struct stat sb;
    CHECK(lstat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode));

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return test_done();
}
