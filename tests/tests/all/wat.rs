//! Test guests that are not built with our SDK: WASI preview 1 command
//! modules and components written as WAT text and compiled in the test.

/// Compiles WAT text to wasm bytes.
pub fn wasm(text: &str) -> Vec<u8> {
    ::wat::parse_str(text).expect("valid WAT")
}

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
"#;

fn command(body: &str) -> Vec<u8> {
    wasm(&format!(
        "(module {IMPORTS} (func (export \"_start\") {body}))"
    ))
}

/// Copies stdin to stdout (one read of up to 64 KiB).
pub fn echo() -> Vec<u8> {
    command(
        r#"
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 65536))
        (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (i32.store (i32.const 4) (i32.load (i32.const 8)))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))"#,
    )
}

/// Writes "bye" to stderr and exits with `code`.
pub fn exit_with(code: i32) -> Vec<u8> {
    command(&format!(
        r#"
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 3))
        (i32.store (i32.const 100) (i32.const 0x657962))
        (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 12)))
        (call $proc_exit (i32.const {code}))"#
    ))
}

/// Divides by zero: a trap that is neither a panic nor a limit.
pub fn divide_by_zero() -> Vec<u8> {
    command("(drop (i32.div_s (i32.const 1) (i32.const 0)))")
}

/// Loops forever.
pub fn spin() -> Vec<u8> {
    command("(loop $l (br $l))")
}

/// Writes 64 KiB of zeros to stdout `times` times.
pub fn flood(times: u32) -> Vec<u8> {
    command(&format!(
        r#"
        (local $i i32)
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 65536))
        (loop $l
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const {times}))))"#
    ))
}

/// Sleeps for an hour in `poll_oneoff`: time spent in a host call, where
/// neither fuel nor epochs reach.
pub fn sleep_an_hour() -> Vec<u8> {
    command(
        r#"
        (i64.store (i32.const 0) (i64.const 1))
        (i32.store8 (i32.const 8) (i32.const 0))
        (i32.store (i32.const 16) (i32.const 1))
        (i64.store (i32.const 24) (i64.const 3600000000000))
        (i64.store (i32.const 32) (i64.const 0))
        (i32.store16 (i32.const 40) (i32.const 0))
        (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))"#,
    )
}

/// A command module that imports a function the host does not provide.
pub fn unknown_import() -> Vec<u8> {
    wasm(
        r#"(module
          (import "env" "launch_missiles" (func (param i32)))
          (memory (export "memory") 1)
          (func (export "_start")))"#,
    )
}

/// A module whose initial memory is `pages` × 64 KiB.
pub fn big_memory(pages: u32) -> Vec<u8> {
    wasm(&format!(
        r#"(module (memory (export "memory") {pages}) (func (export "_start")))"#
    ))
}

/// A core module without `_start` (a reactor, not a command).
pub fn reactor() -> Vec<u8> {
    wasm(r#"(module (memory (export "memory") 1) (func (export "work")))"#)
}

/// A module with `n` functions, slow enough to compile that a tiny compile
/// limit is always exceeded.
pub fn many_functions(n: usize) -> Vec<u8> {
    let mut text =
        String::from("(module (memory (export \"memory\") 1) (func (export \"_start\"))");
    for i in 0..n {
        text.push_str(&format!(
            "(func (param i64) (result i64) (local.get 0) (i64.const {i}) (i64.mul) (i64.const 7) (i64.rem_u))"
        ));
    }
    text.push(')');
    wasm(&text)
}

/// A component that exports nothing.
pub fn empty_component() -> Vec<u8> {
    wasm("(component)")
}

/// A component exporting `run` with the wrong signature.
pub fn component_with_wrong_run() -> Vec<u8> {
    wasm(
        r#"(component
          (core module $m (func (export "f")))
          (core instance $i (instantiate $m))
          (func (export "run") (canon lift (core func $i "f"))))"#,
    )
}
