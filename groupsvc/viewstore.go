package groupsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"memstore/replica/protocol"
)

// viewKey is the key of the view in the bucket.
const viewKey = "view"

// viewStore keeps the view in a JetStream KV bucket (file storage, so the
// epoch survives a middleware restart). Writes are compare-and-set on the
// key's revision.
type viewStore struct {
	kv jetstream.KeyValue
}

func openViewStore(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*viewStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Storage: jetstream.FileStorage, History: 1, Replicas: replicas,
		Description: "memstore group view; changed only by compare-and-set",
	})
	if err != nil {
		return nil, fmt.Errorf("groupsvc: open view bucket %s: %w", bucket, err)
	}
	return &viewStore{kv: kv}, nil
}

// load returns the stored view and its revision; zero and 0 if none.
func (s *viewStore) load(ctx context.Context) (protocol.View, uint64, error) {
	e, err := s.kv.Get(ctx, viewKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return protocol.View{}, 0, nil
	}
	if err != nil {
		return protocol.View{}, 0, fmt.Errorf("groupsvc: read view: %w", err)
	}
	return decodeView(e)
}

// watch reports every view written after it starts, by this coordinator or
// another one, until it is stopped. (The watch lives as long as the context
// it is made with, so it gets none.)
func (s *viewStore) watch() (jetstream.KeyWatcher, error) {
	w, err := s.kv.Watch(context.Background(), viewKey, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("groupsvc: watch view: %w", err)
	}
	return w, nil
}

func decodeView(e jetstream.KeyValueEntry) (protocol.View, uint64, error) {
	var v protocol.View
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return protocol.View{}, 0, fmt.Errorf("groupsvc: stored view at revision %d is corrupt: %w", e.Revision(), err)
	}
	return v, e.Revision(), nil
}

// cas writes v if the stored revision is still rev (0: no view yet), and
// returns what the store holds afterwards, whether the write won or not.
func (s *viewStore) cas(ctx context.Context, v protocol.View, rev uint64) (protocol.View, uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return protocol.View{}, 0, err
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = s.kv.Create(ctx, viewKey, data)
	} else {
		newRev, err = s.kv.Update(ctx, viewKey, data, rev)
	}
	if err == nil {
		return v, newRev, nil
	}
	return s.load(ctx)
}
