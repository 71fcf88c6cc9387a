package shoalv1

// LeaderHintKey is the trailer in which a follower that refuses a stream
// names the leader's gRPC address, so the caller goes there next. It is
// part of the wire protocol between the dispatcher and the workers'
// sessions, so it lives with the schema (hand-written, not generated).
const LeaderHintKey = "shoal-leader"
