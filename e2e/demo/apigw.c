/* The demo's sample workload: a tiny "API gateway" whose request loop calls parse_hdr (the function a
 * made-up CVE-DEMO-0001 is about) and which also links legacy_decode (CVE-DEMO-0002), a function that is
 * present in the binary but never runs. Built with frame pointers (bpftrace walks them), shipped stripped:
 * the operator names its frames from the FuncProof of the unstripped build. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

volatile unsigned long sink;

__attribute__((noinline)) unsigned long parse_hdr(const char *h, unsigned n) {
  unsigned long x = 1469598103934665603UL;
  for (unsigned r = 0; r < 20000; r++)
    for (unsigned i = 0; i < n; i++) x = (x ^ (unsigned char)h[i]) * 1099511628211UL;
  usleep(200); /* leave some CPU to the rest of the machine */
  return x;
}

/* Present, never called: kept by `used` and a pointer nobody follows. */
__attribute__((noinline, used)) unsigned long legacy_decode(const char *h, unsigned n) {
  unsigned long x = 0;
  for (unsigned i = 0; i < n; i++) x += (unsigned char)h[i] * 31UL;
  return x;
}
unsigned long (*volatile legacy_hook)(const char *, unsigned) = 0;

__attribute__((noinline)) void handle_request(const char *req) {
  sink += parse_hdr(req, (unsigned)strlen(req));
  if (legacy_hook) sink += legacy_hook(req, 1);
  sink++;
}

int main(void) {
  const char *req = "GET /v1/orders HTTP/1.1\r\nHost: apigw\r\n\r\n";
  for (;;) handle_request(req);
}
