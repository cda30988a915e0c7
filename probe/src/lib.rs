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

/// Runs one height of the consensus state machine alone and validates the stored block it decides
/// (links `consensus` and `ledger` validation).
#[unsafe(no_mangle)]
pub extern "C" fn probe_chain(seed: u8, bytes: *const u8, len: usize) -> u32 {
    use gridtwin_firmware::consensus::{Config, Consensus, Output, Tendermint, Verify};
    use gridtwin_firmware::ledger::{Tip, Validator, ValidatorSet, decode_stored, encode_stored, validate_block, validate_commit};
    use gridtwin_firmware::{Instant, app::Key};
    let key = Key::from_bytes(&[seed; 32]);
    let Ok(vals) = ValidatorSet::new(alloc::vec![Validator { key: key.verifying_key().to_bytes(), power: 1 }]) else {
        return 0;
    };
    let cfg = Config::new([seed; 32]);
    let tip = Tip { height: 1, prev_hash: cfg.chain_id, prev_time_ns: 0, state_root: [0; 32] };
    let mut node = Tendermint::new(cfg, vals.clone(), Some((0, key)));
    let mut out = Output::default();
    node.start_height(Instant(1), tip, alloc::vec::Vec::new(), &mut Verify, &mut out);
    let input = unsafe { core::slice::from_raw_parts(bytes, len) };
    node.on_message(Instant(2), input, &mut Verify, &mut out);
    let Some((block, commit)) = out.decided else { return 1 };
    let stored = encode_stored(&block, &commit);
    match decode_stored(&stored) {
        Ok((b, c)) if validate_block(&cfg.chain_id, &vals, &tip, &b, None).is_ok()
            && validate_commit(&cfg.chain_id, &vals, &b, &c).is_ok() => 2,
        _ => 3,
    }
}

/// Frames a report for the UART, decodes it back, batches it, runs an MQTT session to a PUBLISH and parses a
/// command: links the link, MQTT and gateway firmware.
#[unsafe(no_mangle)]
pub extern "C" fn probe_gateway(buf: *mut u8) -> u32 {
    use gridtwin_firmware::Instant;
    use gridtwin_firmware::gateway::{GatewayConfig, batch, command::Command, Gateway};
    use gridtwin_firmware::link::{self, FrameDecoder};
    use gridtwin_firmware::mqtt::{ClientConfig, ConnAck, Packet, QoS, Version};
    let r = ReportRepr { lmu_id: 3, ..ReportRepr::default() };
    let mut wire = alloc::vec::Vec::new();
    link::encode(&r.to_bytes(), &mut wire);
    let mut d = FrameDecoder::new(128);
    let mut n = 0u32;
    let cfg = GatewayConfig {
        gateway_id: "gw-1".into(),
        lmus: [3u32].into_iter().collect(),
        wait_all: gridtwin_firmware::Duration::from_secs(30),
        max_batch_readings: 16,
        store_batches: 4,
        qos: QoS::AtLeastOnce,
        downlink_queue: 4,
        mqtt: ClientConfig::new("gw-1"),
    };
    let Ok(mut g) = Gateway::new(cfg) else { return 0 };
    d.feed(&wire, |p| {
        g.on_frame(Instant(0), p);
        n += 1;
    });
    g.transport_up(Instant(1));
    let mut ack = alloc::vec::Vec::new();
    let _ = Packet::ConnAck(ConnAck { session_present: false, code: 0 }).encode(Version::V311, &mut ack);
    g.input(Instant(2), &ack);
    let out = g.take_output();
    let mut b = alloc::vec::Vec::new();
    let _ = batch::encode(&[r], &mut b);
    let c = Command::parse(b"open 3").map_or(0, |c| c.lmu_id);
    let dst = unsafe { core::slice::from_raw_parts_mut(buf, 4) };
    dst.copy_from_slice(&(out.len() as u32).to_le_bytes());
    n + c + b.len() as u32
}
