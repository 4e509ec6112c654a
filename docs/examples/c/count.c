// A wasmjob job in C: a WASI command module. The input arrives on stdin,
// stdout is the output, exit code 0 is success (anything else is a
// retryable `exit_code` failure).
//
// Build (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32):
//   clang --target=wasm32-wasi -O2 -o count.wasm count.c
// Run:
//   wasmjob exec count.wasm --input 'hello world'
#include <stdio.h>

int main(void) {
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, stdin);
    if (n == 0) {
        fprintf(stderr, "no input\n");
        return 3;
    }
    size_t words = 0;
    int in_word = 0;
    for (size_t i = 0; i < n; i++) {
        int space = buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\t';
        if (!space && !in_word) words++;
        in_word = !space;
    }
    printf("{\"bytes\": %zu, \"words\": %zu}\n", n, words);
    return 0;
}
