/*
 * comm_proto.h - the wire constants of the Communicator protocol
 * (docs/PROTOCOL.md). Everything that changes with a protocol version is
 * here and nowhere else: the version bytes, the labels and the layouts.
 * Implementation limits that a device may tune are in comm_config.h.
 */
#ifndef COMM_PROTO_H
#define COMM_PROTO_H

/* 1.5: the protocol version. It is the version byte of handshake
 * messages, envelopes, key bundles and key files, and the "/2" of every
 * label. Version 2 signs every envelope by its sender (6) and retires
 * previous epochs' keys by message counts (8.3). */
#define COMM_VERSION 2
#define COMM_SUITE 1 /* 2.2: X25519, Ed25519, SHA-256, HMAC-SHA256, HKDF-SHA256 */

/* 3: labels, ASCII without terminator (use COMM_LABEL_LEN for the length). */
#define COMM_LABEL_PREFIX "communicator/2 "
#define COMM_LABEL_SERVER_SIG COMM_LABEL_PREFIX "handshake server signature"
#define COMM_LABEL_CLIENT_SIG COMM_LABEL_PREFIX "handshake client signature"
#define COMM_LABEL_KEY_C2S COMM_LABEL_PREFIX "channel key client to server"
#define COMM_LABEL_KEY_S2C COMM_LABEL_PREFIX "channel key server to client"
#define COMM_LABEL_BUNDLE_SIG COMM_LABEL_PREFIX "key bundle signature"
#define COMM_LABEL_BUNDLE_WRAP COMM_LABEL_PREFIX "key bundle wrap"
#define COMM_LABEL_MEMBER_DIGEST COMM_LABEL_PREFIX "epoch member list"
#define COMM_LABEL_ENVELOPE_SIG COMM_LABEL_PREFIX "group message signature"
/* server-side records, read only by the audit part (audit/, comm_event.h) */
#define COMM_LABEL_EVENT COMM_LABEL_PREFIX "keyserver event"
#define COMM_LABEL_CHECKPOINT COMM_LABEL_PREFIX "event log checkpoint"
#define COMM_LABEL_LEN(l) (sizeof(l) - 1)

/* 2.3, 2.4: sizes. */
#define COMM_PUBLIC_KEY_SIZE 32
#define COMM_SEED_SIZE 32
#define COMM_SIGNATURE_SIZE 64
#define COMM_HASH_SIZE 32
#define COMM_MAC_SIZE 32
#define COMM_GROUP_KEY_SIZE 32
#define COMM_GROUP_ID_SIZE 16
#define COMM_CLIENT_ID_SIZE 32
#define COMM_MAX_FRAME_BODY 65536u
#define COMM_MAX_PAYLOAD 61440u
#define COMM_MAX_COUNTER_JUMP 4294967296ull /* 2^32 */
#define COMM_EXHAUSTED_COUNTER 0xffffffffffffffffull
#define COMM_WINDOW_SIZE 256
#define COMM_RETIRE_AFTER 256 /* 8.3: messages of the newest epoch before the previous one retires */
#define COMM_MAX_INFLIGHT 128

/* 4.1: handshake messages. */
#define COMM_HS_HEADER_SIZE 4
#define COMM_HS_MSG_SIZE 68   /* M1..M4 */
#define COMM_HS_ERROR_SIZE 6  /* the error message */
#define COMM_HS_M1 0x01
#define COMM_HS_M2 0x02
#define COMM_HS_M3 0x03
#define COMM_HS_M4 0x04
#define COMM_HS_ERROR 0x0f
#define COMM_HS_SIG_INPUT_SIZE (41 + 1 + 2 + 32) /* 4.4: 76 */
#define COMM_HS_KDF_INFO_SIZE (43 + 1 + 2)       /* 4.6: 46 */

/* 5.1: frames: length (4) | type (1) | counter (8) | body | tag (32). */
#define COMM_FRAME_HEADER_SIZE 13
#define COMM_FRAME_OVERHEAD 45
#define COMM_FRAME_MIN_LENGTH 41u
#define COMM_FRAME_MAX_LENGTH (41u + COMM_MAX_FRAME_BODY)

/* 5.4: frame types. */
#define COMM_FRAME_READY 0x10
#define COMM_FRAME_ERROR 0x11
#define COMM_FRAME_PING 0x12
#define COMM_FRAME_PONG 0x13
#define COMM_FRAME_CLOSE 0x14
#define COMM_FRAME_KEY_BUNDLE 0x20
#define COMM_FRAME_SEND 0x21
#define COMM_FRAME_SEND_ACK 0x22
#define COMM_FRAME_DELIVER 0x23
#define COMM_FRAME_DELIVER_ACK 0x24
#define COMM_FRAME_GROUPS 0x25
#define COMM_SEND_ACK_SIZE 26
#define COMM_MAX_GROUPS_LISTED 4096

/* 5.5: SendAck statuses. */
#define COMM_ACK_ACCEPTED 0
#define COMM_ACK_REFUSED 1
#define COMM_ACK_DUPLICATE 2
#define COMM_ACK_RETRY 3
#define COMM_ACK_OLD_EPOCH 4
#define COMM_ACK_NOT_MEMBER 5
#define COMM_ACK_REVOKED 6
#define COMM_ACK_NO_GROUP 7
#define COMM_ACK_FUTURE_EPOCH 8

/* 6.1: envelopes. The header (version .. counter) is the AEAD's
 * associated data; the sender's Ed25519 signature over LabelEnvelopeSig |
 * version | suite | header | nonce | ciphertext follows the ciphertext. */
#define COMM_ENV_VERSION COMM_VERSION
#define COMM_ENV_OFF_GROUP 1
#define COMM_ENV_OFF_EPOCH 17
#define COMM_ENV_OFF_SENDER 21
#define COMM_ENV_OFF_COUNTER 53
#define COMM_ENV_OFF_NONCE 61
#define COMM_ENV_OFF_CT 85
#define COMM_ENV_HEADER_SIZE 61
#define COMM_ENV_NONCE_SIZE 24
#define COMM_ENV_TAG_SIZE 16
#define COMM_ENV_SIG_SIZE 64
#define COMM_ENV_OVERHEAD (101 + COMM_ENV_SIG_SIZE)
#define COMM_ENV_MAX_SIZE (COMM_ENV_OVERHEAD + COMM_MAX_PAYLOAD)

/* 7.1: key bundles. */
#define COMM_BUNDLE_VERSION COMM_VERSION
#define COMM_BUNDLE_SIZE 229
#define COMM_BUNDLE_SIGNED_SIZE 165 /* bytes 0..164, under the signature */
#define COMM_BUNDLE_OFF_GROUP 1
#define COMM_BUNDLE_OFF_EPOCH 17
#define COMM_BUNDLE_OFF_MEMBER 21
#define COMM_BUNDLE_OFF_MEMBERS 53
#define COMM_BUNDLE_OFF_ENC 85
#define COMM_BUNDLE_OFF_WRAPPED 117
#define COMM_BUNDLE_OFF_SIG 165
#define COMM_BUNDLE_WRAPPED_SIZE 48
#define COMM_BUNDLE_WRAP_INFO_SIZE (30 + 1 + 16 + 4 + 32) /* 7.2: 83 */

/* 10: key files. */
#define COMM_KEYFILE_VERSION COMM_VERSION
#define COMM_KEYFILE_MAGIC "CMKY"
#define COMM_KEYFILE_MAX_SIZE 74
#define COMM_KIND_CLIENT_IDENTITY 1
#define COMM_KIND_CLIENT_PUBLIC 2
#define COMM_KIND_SERVER_KEY 3
#define COMM_KIND_SERVER_PUBLIC 4
#define COMM_KIND_KEYSERVER_KEY 5
#define COMM_KIND_KEYSERVER_PUBLIC 6
#define COMM_KIND_OPERATOR_KEY 7
#define COMM_KIND_OPERATOR_PUBLIC 8

#endif
