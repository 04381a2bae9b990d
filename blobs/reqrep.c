/*
 * reqrep: framed request/reply test helper for umh.
 *
 * Frame: 4-byte little-endian unsigned length N, then N payload bytes.
 * N must be <= 16 MiB.
 *
 * stdin:  a sequence of request frames.
 * stdout: exactly one reply frame per request, except for commands that
 *         never return (!exit, !crash, !hang). Nothing else is written.
 * stderr: diagnostics only.
 *
 * Requests (matched by exact ASCII prefix of the payload):
 *   "!pid"         reply: this process's pid as decimal ASCII
 *   "!exit N"      exit immediately with status N (decimal, 0..255), no reply
 *   "!crash"       die of a real SIGSEGV (store through a null pointer)
 *   "!hang"        block forever in pause(), no reply
 *   "!sleep MS"    sleep MS milliseconds (decimal), then reply "ok"
 *   "!stderr TEXT" write TEXT + "\n" to stderr, then reply "ok"
 *   anything else  reply with the same payload (echo)
 *
 * Exit status:
 *   0  stdin reached EOF exactly at a frame boundary
 *   1  read/write error on stdin/stdout, or out of memory
 *   2  protocol error: EOF inside a frame, N > 16 MiB, or a malformed
 *      number in !exit / !sleep
 *   N  as requested by "!exit N"
 *   killed by SIGSEGV after "!crash"
 * Signal dispositions are left at their defaults (SIGPIPE kills).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (16u * 1024u * 1024u)

static void die(int code, const char *msg) {
  size_t len = strlen(msg);
  /* Best effort: nothing sensible to do if stderr fails. */
  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, msg, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg += n;
    len -= (size_t)n;
  }
  _exit(code);
}

/* Reads up to len bytes; returns the count read (< len only at EOF). */
static size_t read_full(int fd, unsigned char *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      die(1, "reqrep: read error on stdin\n");
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  return got;
}

static void write_full(int fd, const unsigned char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      die(1, "reqrep: write error\n");
    }
    buf += n;
    len -= (size_t)n;
  }
}

static void reply(const void *payload, size_t len) {
  unsigned char hdr[4] = {
      (unsigned char)len, (unsigned char)(len >> 8),
      (unsigned char)(len >> 16), (unsigned char)(len >> 24)};
  write_full(STDOUT_FILENO, hdr, sizeof hdr);
  write_full(STDOUT_FILENO, payload, len);
}

/* Parses a NUL-terminated, non-empty decimal string no greater than max. */
static unsigned long parse_dec(const char *s, unsigned long max) {
  unsigned long v = 0;
  if (*s == '\0') die(2, "reqrep: expected a decimal number\n");
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9') die(2, "reqrep: expected a decimal number\n");
    v = v * 10 + (unsigned long)(*s - '0');
    if (v > max) die(2, "reqrep: number out of range\n");
  }
  return v;
}

static int has_prefix(const unsigned char *p, size_t len, const char *pre) {
  size_t n = strlen(pre);
  return len >= n && memcmp(p, pre, n) == 0;
}

static void sleep_ms(unsigned long ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int main(void) {
  unsigned char *buf = NULL;
  size_t cap = 0;

  for (;;) {
    unsigned char hdr[4];
    size_t got = read_full(STDIN_FILENO, hdr, sizeof hdr);
    if (got == 0) _exit(0);
    if (got < sizeof hdr) die(2, "reqrep: EOF inside frame header\n");

    uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 |
                   (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
    if (len > MAX_FRAME) die(2, "reqrep: frame larger than 16 MiB\n");

    /* One spare byte so the payload can be NUL-terminated for parsing. */
    if ((size_t)len + 1 > cap) {
      size_t ncap = cap ? cap : 4096;
      while (ncap < (size_t)len + 1) ncap *= 2;
      unsigned char *nbuf = realloc(buf, ncap);
      if (nbuf == NULL) die(1, "reqrep: out of memory\n");
      buf = nbuf;
      cap = ncap;
    }
    if (read_full(STDIN_FILENO, buf, len) < len)
      die(2, "reqrep: EOF inside frame payload\n");
    buf[len] = '\0';

    if (has_prefix(buf, len, "!pid")) {
      char num[24];
      char *p = num + sizeof num;
      unsigned long pid = (unsigned long)getpid();
      do {
        *--p = (char)('0' + pid % 10);
        pid /= 10;
      } while (pid > 0);
      reply(p, (size_t)(num + sizeof num - p));
    } else if (has_prefix(buf, len, "!exit ")) {
      _exit((int)parse_dec((const char *)buf + 6, 255));
    } else if (has_prefix(buf, len, "!crash")) {
      /* Volatile pointer to volatile: neither the load nor the store can be
       * elided, so this really faults with SIGSEGV. */
      volatile int *volatile null_ptr = NULL;
      *null_ptr = 1;
      abort(); /* not reached */
    } else if (has_prefix(buf, len, "!hang")) {
      for (;;) pause();
    } else if (has_prefix(buf, len, "!sleep ")) {
      sleep_ms(parse_dec((const char *)buf + 7, 86400000UL));
      reply("ok", 2);
    } else if (has_prefix(buf, len, "!stderr ")) {
      buf[len] = '\n';
      write_full(STDERR_FILENO, buf + 8, len - 8 + 1);
      reply("ok", 2);
    } else {
      reply(buf, len);
    }
  }
}
