/* Release 2: validate_input is new and sits before the others (so they all move), and
 * parse_header changed (it calls validate_input and rejects long lines). */
#include <stdio.h>
#include <string.h>

int extra_state[32];
int weights[8] = {3, 1, 4, 1, 5, 9, 2, 6};
const char banner[] = "stella test program";

__attribute__((noinline, noclone)) int validate_input(const char *s) {
  size_t n = strlen(s);
  extra_state[n % 32]++;
  return n > 4 && n < 256;
}

__attribute__((noinline, noclone)) unsigned checksum(const char *s) {
  unsigned sum = 0;
  for (size_t i = 0; s[i] != '\0'; i++) sum = sum * 31u + (unsigned)s[i] * (unsigned)weights[i % 8];
  return sum;
}

__attribute__((noinline, noclone)) int parse_header(const char *line) {
  if (!validate_input(line)) return -2;
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
