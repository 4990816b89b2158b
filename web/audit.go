package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/audit"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/eventstore/merkle"
	"github.com/dashtam/dashtam/web/api"
)

// auditCaller returns the audit service and the verified caller, or the
// problem a deployment without the audit service answers.
func (h *strictAPI) auditCaller(ctx context.Context) (audit.Service, commands.Principal, error) {
	if h.s.audit == nil {
		return nil, commands.Principal{}, Errorf(CodeUnavailable, "the audit trail is not served by this instance")
	}
	p, err := callerOf(ctx)
	return h.s.audit, p, err
}

// ListAuditEvents answers a page of the log.
func (h *strictAPI) ListAuditEvents(ctx context.Context, req api.ListAuditEventsRequestObject) (api.ListAuditEventsResponseObject, error) {
	svc, p, err := h.auditCaller(ctx)
	if err != nil {
		return nil, err
	}
	prm := req.Params
	q := audit.EventQuery{UserID: prm.UserId, Stream: prm.Stream, EventType: prm.EventType, Actor: prm.Actor,
		From: prm.From, To: prm.To, Cursor: prm.Cursor}
	if prm.Limit != nil {
		q.Limit = *prm.Limit
	}
	page, err := svc.Events(ctx, p, q, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	out := api.ListAuditEvents200JSONResponse{Items: make([]api.AuditEvent, len(page.Events))}
	for i, e := range page.Events {
		if out.Items[i], err = auditEventJSON(e); err != nil {
			return nil, err
		}
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	return out, nil
}

// GetAuditEvent answers one event with its proof.
func (h *strictAPI) GetAuditEvent(ctx context.Context, req api.GetAuditEventRequestObject) (api.GetAuditEventResponseObject, error) {
	svc, p, err := h.auditCaller(ctx)
	if err != nil {
		return nil, err
	}
	d, err := svc.Event(ctx, p, req.Id, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	e, err := auditEventJSON(d.Event)
	if err != nil {
		return nil, err
	}
	out := api.GetAuditEvent200JSONResponse{
		Actor: e.Actor, EventType: e.EventType, Id: e.Id, Metadata: e.Metadata, OwnerId: e.OwnerId, Payload: e.Payload,
		Position: e.Position, RecordedAt: e.RecordedAt, SchemaVersion: e.SchemaVersion, StreamId: e.StreamId,
		StreamType: e.StreamType, TransactionId: e.TransactionId, Version: e.Version,
		PrevHash: hex.EncodeToString(d.PrevHash), Hash: hex.EncodeToString(d.Hash),
	}
	if pr := d.Proof; pr != nil {
		path := make([]string, len(pr.Path))
		for i, h := range pr.Path {
			path[i] = h.String()
		}
		out.InclusionProof = &api.InclusionProof{
			Checkpoint: checkpointJSON(pr.Checkpoint), LeafIndex: pr.LeafIndex, TreeSize: pr.Checkpoint.TreeSize,
			LeafHash: merkle.LeafHash(eventstore.LeafData(d.Position, d.Hash)).String(), Path: path, Verified: d.ProofVerified,
		}
	}
	return out, nil
}

// ListAuditCheckpoints answers a page of checkpoints, newest first.
func (h *strictAPI) ListAuditCheckpoints(ctx context.Context, req api.ListAuditCheckpointsRequestObject) (api.ListAuditCheckpointsResponseObject, error) {
	svc, p, err := h.auditCaller(ctx)
	if err != nil {
		return nil, err
	}
	q := audit.CheckpointQuery{Cursor: req.Params.Cursor}
	if req.Params.Limit != nil {
		q.Limit = *req.Params.Limit
	}
	page, err := svc.Checkpoints(ctx, p, q, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	out := api.ListAuditCheckpoints200JSONResponse{Items: make([]api.AuditCheckpoint, len(page.Checkpoints))}
	for i, c := range page.Checkpoints {
		out.Items[i] = checkpointJSON(c)
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	return out, nil
}

// GetAuditCheckpoint answers one checkpoint.
func (h *strictAPI) GetAuditCheckpoint(ctx context.Context, req api.GetAuditCheckpointRequestObject) (api.GetAuditCheckpointResponseObject, error) {
	svc, p, err := h.auditCaller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := svc.Checkpoint(ctx, p, req.Id, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	return api.GetAuditCheckpoint200JSONResponse(checkpointJSON(c)), nil
}

// GetAuditStreamState answers a stream's state as of a moment.
func (h *strictAPI) GetAuditStreamState(ctx context.Context, req api.GetAuditStreamStateRequestObject) (api.GetAuditStreamStateResponseObject, error) {
	svc, p, err := h.auditCaller(ctx)
	if err != nil {
		return nil, err
	}
	st, err := svc.StreamState(ctx, p, audit.StateQuery{Type: req.Type, ID: req.Id, AsOf: req.Params.AsOf}, requestContextOf(ctx))
	if err != nil {
		return nil, err
	}
	state, err := jsonObject(st.State)
	if err != nil {
		return nil, err
	}
	return api.GetAuditStreamState200JSONResponse{
		Stream: st.Stream.String(), AsOf: st.AsOf.UTC(), Version: st.Version, Position: st.Position,
		RecordedAt: st.RecordedAt.UTC(), State: state,
	}, nil
}

func auditEventJSON(e audit.Event) (api.AuditEvent, error) {
	md, err := rawObject(e.Metadata)
	if err != nil {
		return api.AuditEvent{}, err
	}
	payload, err := rawObject(e.Payload)
	if err != nil {
		return api.AuditEvent{}, err
	}
	return api.AuditEvent{
		Id: e.ID, Position: e.Position, TransactionId: strconv.FormatUint(e.TransactionID, 10),
		StreamType: string(e.Stream.Type), StreamId: e.Stream.ID, Version: e.Version, EventType: e.Type,
		SchemaVersion: e.SchemaVersion, OwnerId: e.OwnerID, RecordedAt: e.RecordedAt.UTC(), Actor: e.Actor,
		Metadata: md, Payload: payload,
	}, nil
}

// rawObject decodes stored JSON into the generated map type, keeping
// numbers exact (json.Number) so that an amount is never rounded on its
// way to an auditor.
func rawObject(raw json.RawMessage) (map[string]any, error) {
	out := map[string]any{}
	if len(raw) == 0 {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// jsonObject renders a state value as the generated map type.
func jsonObject(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return rawObject(b)
}

func checkpointJSON(c eventstore.Checkpoint) api.AuditCheckpoint {
	proof := make([]string, len(c.Consistency))
	for i, h := range c.Consistency {
		proof[i] = h.String()
	}
	return api.AuditCheckpoint{
		Format: eventstore.CheckpointFormat, Seq: c.Seq, TreeSize: c.TreeSize, Root: c.Root.String(),
		LastTransactionId: int64(c.Last.TransactionID), LastPosition: c.Last.GlobalPosition, CreatedAt: c.CreatedAt.UTC(),
		PrevDigest: c.PrevDigest.String(), ConsistencyProof: proof, KeyId: c.KeyID,
		PublicKey: base64.StdEncoding.EncodeToString(c.PublicKey), Signature: base64.StdEncoding.EncodeToString(c.Signature),
		Digest: c.Digest().String(),
	}
}
