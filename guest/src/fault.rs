//! Fault injection for the host's sandbox tests, compiled only with the
//! `fault-injection` feature (never into the shipped component): a payload that starts
//! with a marker makes the component misbehave while it holds that message. (A publish of
//! `fault:hoard` makes it send without end and keep every pending ack, and a failed
//! publish to a `fault.verdict` subject makes it trap while judging the failure: both in
//! `component.rs`, since they need the generated types.)

/// Misbehaves as the payload asks: `fault:trap` panics (a trap), `fault:spin` loops
/// forever, `fault:hog` allocates until memory runs out.
pub fn inject(payload: &[u8]) {
    if payload.starts_with(b"fault:trap") {
        panic!("fault injection: trap");
    }
    if payload.starts_with(b"fault:spin") {
        let mut counter = 0u64;
        loop {
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
    if payload.starts_with(b"fault:hog") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}
