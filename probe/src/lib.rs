//! Proves the firmware is `no_std`: this staticlib has its own panic handler and a global allocator, so
//! any std dependency in `gridtwin-firmware` makes the build fail. Each function below forces the firmware code
//! it names to be compiled and linked.
#![no_std]

extern crate alloc;

use core::panic::PanicInfo;
use gridtwin_firmware::report::{ReportPacket, ReportRepr};

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

/// A bump allocator over a static arena: enough for the probe to link `alloc` users.
mod arena {
    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::{AtomicUsize, Ordering};

    const SIZE: usize = 64 * 1024;
    pub struct Bump {
        next: AtomicUsize,
    }
    static mut ARENA: [u8; SIZE] = [0; SIZE];

    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let align = layout.align();
            let mut cur = self.next.load(Ordering::Relaxed);
            loop {
                let start = (cur + align - 1) & !(align - 1);
                let end = start + layout.size();
                if end > SIZE {
                    return core::ptr::null_mut();
                }
                match self.next.compare_exchange(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => return unsafe { (&raw mut ARENA as *mut u8).add(start) },
                    Err(c) => cur = c,
                }
            }
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[global_allocator]
    static ALLOC: Bump = Bump { next: AtomicUsize::new(0) };
}

/// Encodes and decodes a report frame.
#[unsafe(no_mangle)]
pub extern "C" fn probe_report(buf: *mut u8) -> u32 {
    let r = ReportRepr { lmu_id: 1, ..ReportRepr::default() };
    let bytes = r.to_bytes();
    let out = unsafe { core::slice::from_raw_parts_mut(buf, bytes.len()) };
    out.copy_from_slice(&bytes);
    match ReportPacket::new_checked(&bytes[..]) {
        Ok(p) => ReportRepr::parse(&p).lmu_id,
        Err(_) => 0,
    }
}
