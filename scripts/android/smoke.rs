//! A panic caught across the unwinder libelectra.so for Android is linked with (GCC's, plus
//! scripts/android/bionic-unwind.c), built with the same linker, stubs and flags by
//! scripts/android-aar.sh and run on an x86-64 Linux host (scripts/android/host-shim.c). Returns
//! the number of panics caught: 2 (one on the calling thread, one on a new thread).
use std::panic;

#[no_mangle]
pub extern "C" fn smoke_catch_panics() -> i32 {
    panic::set_hook(Box::new(|_| {}));
    let mut caught = 0;
    if panic::catch_unwind(|| {
        if std::hint::black_box(true) {
            panic!("smoke: the calling thread")
        }
    })
    .is_err()
    {
        caught += 1;
    }
    let thread = std::thread::spawn(|| panic::catch_unwind(|| panic!("smoke: another thread")).is_err());
    if thread.join().unwrap_or(false) {
        caught += 1;
    }
    caught
}
