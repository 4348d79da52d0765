//! Types shared by governor's kernel programs (`governor-ebpf`) and its userspace daemon.
//!
//! Everything here crosses the kernel/userspace boundary as raw bytes, so every type is
//! `#[repr(C)]` with explicit padding, and its size is asserted at compile time: a layout change
//! on one side that the other does not see fails the build instead of corrupting decisions.
//! Map and global names are constants so that both sides spell them the same way.
#![cfg_attr(not(test), no_std)]
#[cfg(any(test, feature = "user"))]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod class;
pub mod decision;
pub mod detail;
pub mod event;
pub mod maps;
pub mod net;
pub mod offsets;
pub mod path;
pub mod process;
pub mod programs;

pub use event::{Decision, Event, EventKind, Target, EVENT_VERSION};
pub use maps::{
    AgentInfo, AgentRuleKey, Class, DirClear, DirKey, InodeKey, KernelOffsets, LeaseEntry,
    LeaseKey, Masks, ProtectedRule, TreeSeqs, WriteStamp,
};
