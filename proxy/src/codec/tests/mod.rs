//! Unit tests of the codec. Byte vectors are annotated field by field; every rejection rule
//! has its own named test.

mod helpers;

mod acks;
mod basic;
mod connect;
mod control;
mod corpus;
mod differential;
mod encode;
mod framing;
mod gen;
mod more_rejections;
mod publish;
mod reason;
mod roundtrip;
mod subscribe;
