/* replay-main.c — runs a libFuzzer harness without libFuzzer.
 *
 * Builds without clang's -fsanitize=fuzzer link in a main() that feeds every
 * file named on the command line (directories are walked one level) to
 * LLVMFuzzerTestOneInput, so each harness's seed corpus runs as a plain
 * regression test in every build, under the sanitizers when enabled.
 */
#include <stdint.h>
#include <stdio.h>
#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
    g_autofree char *buf = NULL;
    gsize len = 0;
    g_autoptr(GError) error = NULL;

    if (!g_file_get_contents(path, &buf, &len, &error)) {
        fprintf(stderr, "replay: %s\n", error->message);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    return 0;
}

int
main(int argc, char **argv)
{
    int files = 0, rc = 0;

    for (int i = 1; i < argc; i++) {
        if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
            g_autoptr(GDir) dir = g_dir_open(argv[i], 0, NULL);
            const char *name;

            while (dir && (name = g_dir_read_name(dir))) {
                g_autofree char *path = g_build_filename(argv[i], name, NULL);
                rc |= replay_file(path);
                files++;
            }
        } else {
            rc |= replay_file(argv[i]);
            files++;
        }
    }
    printf("replayed %d input(s)\n", files);
    return files > 0 ? rc : 1;
}
