/*
 * reqrep_fuzz: a libFuzzer target for the frame parser of blobs/reqrep.c.
 *
 * Build and run it with tools/fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
 *
 * This file compiles reqrep.c itself, unchanged, by #include, so the code
 * fuzzed is the code shipped. Each fuzzer input becomes reqrep's whole stdin
 * (a memfd holding the input, read to EOF), and reqrep's process-level
 * effects are turned into things one process can repeat millions of times:
 *   main()            renamed reqrep_main() and called once per input
 *   _exit(n)          longjmp back to the fuzzer callback (exit codes 0, 1, 2, N)
 *   pause()           the same (an "!hang" would otherwise block forever)
 *   nanosleep()       returns at once ("!sleep 86400000" is still parsed)
 *   stdout, stderr    /dev/null (reply frames and diagnostics are discarded)
 *   realloc()         tracked, so the frame buffer is freed after each input; a request
 *                     above FUZZ_MAX_ALLOC fails (reqrep's out-of-memory path, exit 1)
 * Inputs containing "!crash" are skipped: that command faults on purpose.
 *
 * Why FUZZ_MAX_ALLOC: an input is at most 64 KiB (tools/fuzz.sh -max_len), so
 * a frame that announces more can never be completed and ends in EOF inside
 * the payload either way; but reqrep would first allocate up to 32 MiB, and
 * under ASan each such allocation costs tens of milliseconds, which slowed the
 * fuzzer from about 5,000 inputs a second to a few hundred.
 *
 * A crash, sanitizer report or timeout is a bug in reqrep's parser; tools/fuzz.sh
 * copies the input into blobs/fuzz/regressions/, which tests/fuzz_test.ts replays.
 */
#include <errno.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

/* glibc declares these only with _GNU_SOURCE, which reqrep.c is not built with. */
int memfd_create(const char *name, unsigned int flags);
#define FUZZ_MFD_CLOEXEC 0x0001U

static jmp_buf fuzz_return;
static int fuzz_stdin = -1;
static int fuzz_null = -1;
static void *fuzz_buffer;

static _Noreturn void fuzz_exit(int code) {
  (void)code;
  longjmp(fuzz_return, 1);
}

#define FUZZ_MAX_ALLOC (1024u * 1024u)

static void *fuzz_realloc(void *old, size_t size) {
  if (size > FUZZ_MAX_ALLOC) return NULL;
  void *p = realloc(old, size);
  if (p != NULL) fuzz_buffer = p;
  return p;
}

static int fuzz_nanosleep(const struct timespec *req, struct timespec *rem) {
  (void)req;
  (void)rem;
  return 0;
}

/* Every system header reqrep.c includes is already in, so these names are
 * only rewritten inside reqrep.c's own code. */
#undef STDIN_FILENO
#undef STDOUT_FILENO
#undef STDERR_FILENO
#define STDIN_FILENO fuzz_stdin
#define STDOUT_FILENO fuzz_null
#define STDERR_FILENO fuzz_null
#define _exit fuzz_exit
#define pause() fuzz_exit(-1)
#define nanosleep fuzz_nanosleep
#define realloc fuzz_realloc
#define main reqrep_main

#include "../reqrep.c"

#undef main
#undef realloc

static int contains(const uint8_t *data, size_t size, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= size; i++) {
    if (memcmp(data + i, needle, n) == 0) return 1;
  }
  return 0;
}

static void write_input(const uint8_t *data, size_t size) {
  if (ftruncate(fuzz_stdin, 0) != 0) abort();
  size_t off = 0;
  while (off < size) {
    ssize_t n = pwrite(fuzz_stdin, data + off, size - off, (off_t)off);
    if (n <= 0) abort();
    off += (size_t)n;
  }
  if (lseek(fuzz_stdin, 0, SEEK_SET) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (contains(data, size, "!crash")) return -1; /* faults on purpose; not a parser bug */
  if (fuzz_stdin < 0) {
    fuzz_stdin = memfd_create("reqrep-fuzz-stdin", FUZZ_MFD_CLOEXEC);
    fuzz_null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fuzz_stdin < 0 || fuzz_null < 0) abort();
  }
  write_input(data, size);
  if (setjmp(fuzz_return) == 0) {
    reqrep_main();
    abort(); /* reqrep's main never returns: it always ends in _exit */
  }
  free(fuzz_buffer);
  fuzz_buffer = NULL;
  return 0;
}
