package vectors

import (
	"bytes"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/bundle"
	"github.com/commsec/communicator/protocol/envelope"
	"github.com/commsec/communicator/protocol/keys"
)

// envelopeCase emits an envelope opened with key.
func (g *gen) envelopeCase(name, comment, expect string, key [32]byte, env []byte) *Vector {
	v := g.emit("envelope-"+name, comment, "envelope", expect)
	v.add("key", key[:])
	v.add("envelope", env)
	return v
}

func (g *gen) envelopes() {
	key, nonce := g.b32(), g.bytes(envelope.NonceSize)
	senderSeed, otherSeed := g.b32(), g.b32()
	sender, other := keys.NewSigningKey(&senderSeed), keys.NewSigningKey(&otherSeed)
	h := envelope.Header{Group: protocol.GroupID(g.bytes(16)), Epoch: 3, Sender: sender.Public(), Counter: 42}
	payload := []byte("meet at the north gate at 0600")
	seal := func(h envelope.Header, key [32]byte, payload []byte, signer envelope.Signer) []byte {
		env, err := envelope.Seal(nil, h, &key, payload, signer, bytes.NewReader(nonce))
		g.check(err)
		return env
	}
	env := seal(h, key, payload, sender)
	v := g.envelopeCase("ok", "An envelope sealed with a fixed nonce and signed by its sender (the Ed25519 key of sender_seed); "+
		"sealing the header and payload with this nonce and key, and signing, gives these bytes. signed is the signature input.", "ok", key, env)
	v.add("group", h.Group[:])
	v.add("epoch", uint32(h.Epoch))
	v.add("sender", h.Sender[:])
	v.add("sender_seed", senderSeed[:])
	v.add("counter", h.Counter)
	v.add("nonce", nonce)
	v.add("signed", envelope.SignatureInput(env))
	v.add("payload", payload)

	v = g.envelopeCase("ok-empty", "An envelope with an empty payload.", "ok", key, seal(h, key, nil, sender))
	v.add("payload", []byte{})

	fields := []struct {
		name string
		at   int
	}{{"group", 1}, {"epoch", 1 + 16 + 3}, {"sender", 1 + 16 + 4}, {"counter", 1 + 16 + 4 + 32 + 7},
		{"nonce", envelope.HeaderSize}, {"ciphertext", envelope.HeaderSize + envelope.NonceSize},
		{"tag", len(env) - envelope.SignatureSize - 1}, {"signature", len(env) - 1}}
	for _, f := range fields {
		g.envelopeCase("altered-"+f.name, "The ok envelope with a bit of its "+f.name+
			" flipped: the signature no longer verifies, and nothing is opened.", "bad_envelope_signature", key, flip(env, f.at))
	}
	g.signatureCases(h, key, payload, env, sender, other, seal)
	g.envelopeCase("wrong-key", "The ok envelope opened with another key: the signature verifies, the AEAD does not open.", "decrypt", g.b32(), env)
	g.envelopeCase("short", "One byte shorter than the smallest envelope (165 bytes).", "envelope_length", key, env[:envelope.Overhead-1])
	g.envelopeCase("version", "The ok envelope with version 1, the unreleased version without signatures.", "envelope_version", key, withByte(env, 0, 1))
	zero := h
	zero.Counter = 0
	zeroEnv := zero.Append(nil)
	zeroEnv = append(zeroEnv, env[envelope.HeaderSize:]...)
	g.envelopeCase("zero-counter", "Counter 0 is never sent: counters start at 1.", "zero_counter", key, zeroEnv)
	zeroEpoch := h
	zeroEpoch.Epoch = 0
	zeroEnv = append(zeroEpoch.Append(nil), env[envelope.HeaderSize:]...)
	g.envelopeCase("zero-epoch", "Epoch 0 never has a key: epochs start at 1.", "bad_epoch", key, zeroEnv)
}

// signatureCases are the envelopes whose signature is not their sender's
// over these very bytes (PROTOCOL.md §6.4).
func (g *gen) signatureCases(h envelope.Header, key [32]byte, payload, env []byte, sender, other *keys.SigningKey,
	seal func(envelope.Header, [32]byte, []byte, envelope.Signer) []byte) {
	sig := env[len(env)-envelope.SignatureSize:]
	next := h
	next.Counter++
	nextEnv := seal(next, key, payload, sender)
	g.envelopeCase("signature-other-header", "The ok envelope's header with counter 43, carrying the signature of the ok envelope "+
		"(counter 42): a signature covers one header.", "bad_envelope_signature", key,
		append(nextEnv[:len(nextEnv)-envelope.SignatureSize:len(nextEnv)-envelope.SignatureSize], sig...))
	forged := envelope.SignatureInput(env)
	otherSig := other.Sign(forged)
	g.envelopeCase("other-signer", "The ok envelope (naming the ok sender) signed instead by another key, as a member or a removed "+
		"member holding the group key would sign a message in the sender's name.", "bad_envelope_signature", key,
		append(bytes.Clone(env[:len(env)-envelope.SignatureSize]), otherSig[:]...))
	outsider := h
	outsider.Sender = other.Public()
	g.envelopeCase("non-member", "An envelope correctly signed by a key that is not a member's, naming itself, sealed under a key "+
		"it made up: the signature verifies, the AEAD does not open under the group's key.", "decrypt", key,
		seal(outsider, g.b32(), payload, other))
	g.envelopeCase("stripped-signature", "The ok envelope without its 64-byte signature: shorter than any envelope.", "envelope_length", key,
		env[:len(env)-envelope.SignatureSize])
	long := seal(h, key, bytes.Repeat([]byte("long payload "), 10), sender)
	g.envelopeCase("stripped-signature-long", "An envelope with a 130-byte payload without its signature: long enough to parse, so "+
		"its last 64 ciphertext bytes are read as the signature, which does not verify.", "bad_envelope_signature", key,
		long[:len(long)-envelope.SignatureSize])
}

func withByte(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

// bundleCase emits a bundle opened by member with the keyserver's key.
func (g *gen) bundleCase(name, comment, expect string, ks [32]byte, member memberKeys, b []byte) *Vector {
	v := g.emit("bundle-"+name, comment, "bundle", expect)
	v.add("keyserver_public", ks[:])
	v.add("member_seed", member.seed[:])
	v.add("member_wrap_scalar", member.scalar[:])
	v.add("bundle", b)
	return v
}

type memberKeys struct {
	seed, scalar [32]byte
	id           *keys.ClientIdentity
}

func (g *gen) member() memberKeys {
	m := memberKeys{seed: g.b32(), scalar: g.b32()}
	wrap, err := keys.NewWrapKey(&m.scalar)
	g.check(err)
	m.id = &keys.ClientIdentity{Sig: keys.NewSigningKey(&m.seed), Wrap: wrap}
	return m
}

func (g *gen) bundles() {
	ksSeed, otherSeed := g.b32(), g.b32()
	ks, other := keys.NewSigningKey(&ksSeed), keys.NewSigningKey(&otherSeed)
	alice, bob, carol := g.member(), g.member(), g.member()
	group, epoch, groupKey := protocol.GroupID(g.bytes(16)), protocol.Epoch(7), g.b32()
	list := []protocol.ClientID{alice.id.ID(), bob.id.ID(), carol.id.ID()}
	digest := bundle.MemberDigest(list)
	wrap := func(signer *keys.SigningKey, to bundle.Recipient) []byte {
		b, err := bundle.Wrap(signer, group, epoch, to, &digest, &groupKey)
		g.check(err)
		if err != nil {
			return nil
		}
		return b.Marshal()
	}
	toAlice := bundle.Recipient{ID: alice.id.ID(), Wrap: alice.id.Wrap.Public()}
	ok := wrap(ks, toAlice)
	v := g.bundleCase("ok", "Alice's bundle for epoch 7 of a group of three; members is MemberDigest of member_list.", "ok", ks.Public(), alice, ok)
	v.add("group", group[:])
	v.add("epoch", uint32(epoch))
	var ids []byte
	for _, id := range list {
		ids = append(ids, id[:]...)
	}
	v.add("member_list", ids)
	v.add("members_digest", digest[:])
	v.add("group_key", groupKey[:])

	g.bundleCase("other-signer", "Alice's bundle signed by a key that is not the keyserver's.", "bad_bundle_signature", ks.Public(), alice, wrap(other, toAlice))
	g.bundleCase("flipped-epoch", "Alice's bundle with a bit of the epoch flipped.", "bad_bundle_signature", ks.Public(), alice, flip(ok, 1+16+3))
	toBob := bundle.Recipient{ID: bob.id.ID(), Wrap: bob.id.Wrap.Public()}
	g.bundleCase("for-bob", "Bob's valid bundle, opened by Alice.", "wrong_member", ks.Public(), alice, wrap(ks, toBob))
	misdirected := bundle.Recipient{ID: alice.id.ID(), Wrap: bob.id.Wrap.Public()}
	g.bundleCase("wrapped-to-bob", "Signed and addressed to Alice, but the key is wrapped to Bob's key-wrap key.", "unwrap", ks.Public(), alice, wrap(ks, misdirected))
	g.bundleCase("truncated", "Alice's bundle without its last byte.", "bundle_length", ks.Public(), alice, ok[:len(ok)-1])
	g.bundleCase("version", "Alice's bundle with version 1, the unreleased version.", "bundle_version", ks.Public(), alice, withByte(ok, 0, 1))
}

func (g *gen) keyfiles() {
	m := g.member()
	ksSeed := g.b32()
	ks := keys.NewSigningKey(&ksSeed)
	priv := keys.EncodeClientIdentity(m.id)
	pub := keys.EncodeClientPublic(m.id.Public())
	kf := func(name, comment, expect string, file []byte) *Vector {
		v := g.emit("keyfile-"+name, comment, "keyfile", expect)
		v.add("file", file)
		return v
	}
	v := kf("client-private", "A client identity: Ed25519 seed then X25519 scalar.", "ok", priv)
	v.add("key_kind", 1)
	v.add("body", append(m.seed[:], m.scalar[:]...))
	v = kf("client-public", "A client's public key file: its id (Ed25519 public key) then its X25519 key-wrap key.", "ok", pub)
	id, wrap := m.id.ID(), m.id.Wrap.Public()
	v.add("key_kind", 2)
	v.add("body", append(id[:], wrap[:]...))
	ksPub := ks.Public()
	v = kf("keyserver-public", "The keyserver's public key Pk_Ks.", "ok", keys.EncodePublicKey(keys.KindKeyserverPublic, ksPub))
	v.add("key_kind", 6)
	v.add("body", ksPub[:])
	kf("foreign", "An OpenSSH public key line is not a key file.", "keyfile_foreign", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"))
	kf("truncated", "The client identity without its last byte.", "keyfile_truncated", priv[:len(priv)-1])
	kf("checksum", "The client identity with a bit of the body flipped.", "keyfile_checksum", flip(priv, 10))
	kf("version", "The client identity with file version 1, the unreleased version.", "keyfile_version", withByte(priv, 4, 1))
	unknown := keys.Encode(keys.Kind(9), make([]byte, 32))
	kf("unknown-kind", "A well-formed file of kind 9, which does not exist.", "keyfile_kind", unknown)
}
