/* Release 1 of a small program: the BinaryDiffV1 test compiles this and prog-v2.c and expects
 * exactly one modified function (parse_header) and one added one (validate_input). */
#include <stdio.h>
#include <string.h>

int weights[8] = {3, 1, 4, 1, 5, 9, 2, 6};
const char banner[] = "stella test program";

__attribute__((noinline, noclone)) unsigned checksum(const char *s) {
  unsigned sum = 0;
  for (size_t i = 0; s[i] != '\0'; i++) sum = sum * 31u + (unsigned)s[i] * (unsigned)weights[i % 8];
  return sum;
}

__attribute__((noinline, noclone)) int parse_header(const char *line) {
  if (strncmp(line, "HDR:", 4) != 0) return -1;
  return (int)(checksum(line + 4) % 1000u);
}

__attribute__((noinline, noclone)) void report(const char *name, int value) {
  printf("%s: %s = %d\n", banner, name, value);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) report(argv[i], parse_header(argv[i]));
  return 0;
}
