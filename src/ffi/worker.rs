//! Threads that run get-or-compute's engine work while the thread that called
//! it runs the compute callback.
//!
//! The callback may leave by a forced unwind (`pthread_exit`, `pthread_cancel`,
//! a Python daemon thread at interpreter exit), which must pass through every
//! frame back to C: a `catch_unwind` on the way would abort the process. So the
//! calling thread keeps no panic boundary around the callback, and the engine,
//! which needs one, runs on a worker. Idle workers are kept for the next call.

use std::sync::mpsc::{self, Sender};

use parking_lot::Mutex;

use super::fork;

type Job = Box<dyn FnOnce() + Send>;

/// Most idle workers kept; more exit when their job ends.
const MOST_IDLE: usize = 16;

/// Idle workers, by the fork generation they were started in.
static IDLE: Mutex<(u64, Vec<Sender<Job>>)> = Mutex::new((0, Vec::new()));

/// Runs `job` on an idle worker or a new one. If no thread can be started the
/// job is dropped unrun, which the caller sees as its channels closing.
pub fn run(job: Job) {
    let job = match take_idle() {
        Some(worker) => match worker.send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    let (sender, receiver) = mpsc::channel::<Job>();
    let _ = std::thread::Builder::new().name("rcache-compute".into()).spawn(move || {
        let mut job = job;
        loop {
            job();
            if !put_idle(sender.clone()) {
                return;
            }
            match receiver.recv() {
                Ok(next) => job = next,
                Err(_) => return,
            }
        }
    });
}

fn take_idle() -> Option<Sender<Job>> {
    let mut idle = IDLE.lock();
    let generation = fork::generation();
    if idle.0 != generation {
        // Workers of the parent process do not exist in this child: forget them.
        std::mem::forget(std::mem::take(&mut idle.1));
        idle.0 = generation;
    }
    idle.1.pop()
}

fn put_idle(worker: Sender<Job>) -> bool {
    let mut idle = IDLE.lock();
    if idle.0 != fork::generation() || idle.1.len() >= MOST_IDLE {
        return false;
    }
    idle.1.push(worker);
    true
}
