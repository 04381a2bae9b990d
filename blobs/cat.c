/*
 * cat: copy stdin to stdout until EOF, for umh throughput/pipe tests.
 *
 * stdin:  any bytes.
 * stdout: the same bytes, unchanged. Takes no arguments.
 * stderr: diagnostics only.
 *
 * Exit status:
 *   0  stdin reached EOF and everything was written
 *   1  read error on stdin or write error on stdout (e.g. EPIPE when
 *      SIGPIPE is ignored)
 *   killed by SIGPIPE when stdout's reader goes away and SIGPIPE has its
 *   default disposition, like a normal cat.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

static unsigned char buf[1024 * 1024];

static void die(const char *msg) {
  size_t len = strlen(msg);
  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, msg, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg += n;
    len -= (size_t)n;
  }
  _exit(1);
}

int main(void) {
  for (;;) {
    ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
    if (got < 0) {
      if (errno == EINTR) continue;
      die("cat: read error on stdin\n");
    }
    if (got == 0) _exit(0);
    for (size_t off = 0; off < (size_t)got;) {
      ssize_t n = write(STDOUT_FILENO, buf + off, (size_t)got - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("cat: write error on stdout\n");
      }
      off += (size_t)n;
    }
  }
}
