package storage

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"memstore/replica/protocol"
)

// Record is one log entry as the WAL stores it: the protocol's entry.
type Record = protocol.Entry

// castagnoli is the CRC-32C table (hardware accelerated on amd64/arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record framing, little endian:
//
//	length  uint32  bytes of payload (16 + len(data)); its top bit
//	                (endsAppend) marks the last record of an Append
//	crc     uint32  CRC-32C of length and payload
//	payload epoch uint64, seq uint64, data
const (
	recordHeader = 8
	payloadMin   = 16
	endsAppend   = 1 << 31
	// MaxRecordData bounds one record's data: anything larger is framing
	// garbage, not a record.
	MaxRecordData = 64 << 20
)

// appendRecord encodes r at the end of buf; last marks it as its
// Append's last record.
func appendRecord(buf []byte, r Record, last bool) []byte {
	n := uint32(payloadMin + len(r.Data))
	if last {
		n |= endsAppend
	}
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, n)
	buf = binary.LittleEndian.AppendUint32(buf, 0)
	buf = binary.LittleEndian.AppendUint64(buf, r.Epoch)
	buf = binary.LittleEndian.AppendUint64(buf, r.Seq)
	buf = append(buf, r.Data...)
	crc := crc32.Update(crc32.Checksum(buf[start:start+4], castagnoli), castagnoli, buf[start+recordHeader:])
	binary.LittleEndian.PutUint32(buf[start+4:], crc)
	return buf
}

// decodeRecord decodes the record at the start of b and returns it with its
// encoded size. Data aliases b.
func decodeRecord(b []byte) (Record, int, error) {
	if len(b) < recordHeader {
		return Record{}, 0, fmt.Errorf("short header: %d bytes", len(b))
	}
	n := int(binary.LittleEndian.Uint32(b) &^ endsAppend)
	if n < payloadMin || n > payloadMin+MaxRecordData {
		return Record{}, 0, fmt.Errorf("bad length %d", n)
	}
	if len(b) < recordHeader+n {
		return Record{}, 0, fmt.Errorf("short record: %d of %d bytes", len(b)-recordHeader, n)
	}
	want := binary.LittleEndian.Uint32(b[4:])
	got := crc32.Update(crc32.Checksum(b[:4], castagnoli), castagnoli, b[recordHeader:recordHeader+n])
	if got != want {
		return Record{}, 0, fmt.Errorf("checksum %08x, want %08x", got, want)
	}
	p := b[recordHeader : recordHeader+n]
	return Record{
		Epoch: binary.LittleEndian.Uint64(p),
		Seq:   binary.LittleEndian.Uint64(p[8:]),
		Data:  p[payloadMin:],
	}, recordHeader + n, nil
}

// lastOfAppend reports whether the record at the start of b, decoded
// already, was the last of its Append.
func lastOfAppend(b []byte) bool { return binary.LittleEndian.Uint32(b)&endsAppend != 0 }

// Segment header, little endian: magic, prev epoch uint64, prev seq
// uint64, CRC-32C of the 24 bytes before it. The magic says how the
// segment was written: "MSWAL002" in place over zeros, its records
// flagging the end of each Append; "MSWAL001" (older versions) appended,
// no flags. Only the first is written now.
const (
	segMagic   = "MSWAL002"
	segMagicV1 = "MSWAL001"
	segHeader  = 28
)

func encodeSegHeader(prevEpoch, prevSeq uint64) []byte {
	b := make([]byte, 0, segHeader)
	b = append(b, segMagic...)
	b = binary.LittleEndian.AppendUint64(b, prevEpoch)
	b = binary.LittleEndian.AppendUint64(b, prevSeq)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeSegHeader decodes a segment header; inPlace says it is of a
// segment written in place (segMagic), not of an older appended one.
func decodeSegHeader(b []byte) (prevEpoch, prevSeq uint64, inPlace bool, err error) {
	if len(b) < segHeader || string(b[:8]) != segMagic && string(b[:8]) != segMagicV1 {
		return 0, 0, false, fmt.Errorf("bad segment header")
	}
	if crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		return 0, 0, false, fmt.Errorf("segment header checksum mismatch")
	}
	return binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]), string(b[:8]) == segMagic, nil
}
