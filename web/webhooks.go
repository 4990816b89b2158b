package web

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/webhooks"
	"github.com/dashtam/dashtam/web/api"
)

// webhooksPath is where a webhook endpoint resource lives, for Location.
const webhooksPath = "/api/v1/webhooks/"

// errWebhooksOff answers the webhook routes of a server built without a
// webhooks service.
var errWebhooksOff = &Error{Code: CodeUnavailable, Detail: "webhooks are not configured on this server"}

// webhookCaller returns the service and the verified caller.
func (h *strictAPI) webhookCaller(ctx context.Context) (webhooks.Service, commands.Principal, error) {
	if h.s.webhooks == nil {
		return nil, commands.Principal{}, errWebhooksOff
	}
	p, err := callerOf(ctx)
	return h.s.webhooks, p, err
}

// CreateWebhook registers an endpoint and shows its secret this once.
func (h *strictAPI) CreateWebhook(ctx context.Context, req api.CreateWebhookRequestObject) (api.CreateWebhookResponseObject, error) {
	svc, p, err := h.webhookCaller(ctx)
	if err != nil {
		return nil, err
	}
	e, secret, err := svc.Create(ctx, p, webhooks.CreateRequest{URL: req.Body.Url, EventTypes: eventTypes(req.Body.EventTypes)})
	if err != nil {
		return nil, err
	}
	loc := webhooksPath + e.ID.String()
	return api.CreateWebhook201JSONResponse{Body: webhookWithSecretJSON(e, secret),
		Headers: api.CreateWebhook201ResponseHeaders{Location: &loc}}, nil
}

// ListWebhooks pages through the caller's endpoints, oldest first.
func (h *strictAPI) ListWebhooks(ctx context.Context, req api.ListWebhooksRequestObject) (api.ListWebhooksResponseObject, error) {
	svc, p, err := h.webhookCaller(ctx)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(req.Params.Limit)
	if err != nil {
		return nil, err
	}
	var after *webhooks.EndpointKey
	if req.Params.Cursor != nil {
		at, id, err := decodeTimeIDCursor(*req.Params.Cursor)
		if err != nil {
			return nil, err
		}
		after = &webhooks.EndpointKey{CreatedAt: at, ID: id}
	}
	es, err := svc.List(ctx, p, after, limit+1)
	if err != nil {
		return nil, err
	}
	list := api.WebhookList{Items: make([]api.Webhook, 0, min(len(es), limit))}
	for _, e := range es[:min(len(es), limit)] {
		list.Items = append(list.Items, webhookJSON(e))
	}
	if len(es) > limit {
		k := es[limit-1].Key()
		next := encodeTimeIDCursor(k.CreatedAt, k.ID)
		list.NextCursor = &next
	}
	return api.ListWebhooks200JSONResponse(list), nil
}

// GetWebhook answers one of the caller's endpoints; another user's is 404.
func (h *strictAPI) GetWebhook(ctx context.Context, req api.GetWebhookRequestObject) (api.GetWebhookResponseObject, error) {
	svc, p, err := h.webhookCaller(ctx)
	if err != nil {
		return nil, err
	}
	e, err := svc.Get(ctx, p, req.Id)
	if err != nil {
		return nil, err
	}
	return api.GetWebhook200JSONResponse(webhookJSON(e)), nil
}

// UpdateWebhook changes what the body sets.
func (h *strictAPI) UpdateWebhook(ctx context.Context, req api.UpdateWebhookRequestObject) (api.UpdateWebhookResponseObject, error) {
	svc, p, err := h.webhookCaller(ctx)
	if err != nil {
		return nil, err
	}
	u := webhooks.UpdateRequest{URL: req.Body.Url, Enabled: req.Body.Enabled}
	if req.Body.EventTypes != nil {
		u.EventTypes = eventTypes(*req.Body.EventTypes)
	}
	e, err := svc.Update(ctx, p, req.Id, u)
	if err != nil {
		return nil, err
	}
	return api.UpdateWebhook200JSONResponse(webhookJSON(e)), nil
}

// DeleteWebhook removes an endpoint and its deliveries.
func (h *strictAPI) DeleteWebhook(ctx context.Context, req api.DeleteWebhookRequestObject) (api.DeleteWebhookResponseObject, error) {
	svc, p, err := h.webhookCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := svc.Delete(ctx, p, req.Id); err != nil {
		return nil, err
	}
	return api.DeleteWebhook204Response{}, nil
}

// TestWebhook queues one webhook.test delivery.
func (h *strictAPI) TestWebhook(ctx context.Context, req api.TestWebhookRequestObject) (api.TestWebhookResponseObject, error) {
	svc, p, err := h.webhookCaller(ctx)
	if err != nil {
		return nil, err
	}
	d, err := svc.Test(ctx, p, req.Id)
	if err != nil {
		return nil, err
	}
	return api.TestWebhook202JSONResponse(deliveryJSON(d)), nil
}

// RotateWebhookSecret answers a new secret; the old one keeps signing
// beside it for the overlap.
func (h *strictAPI) RotateWebhookSecret(ctx context.Context, req api.RotateWebhookSecretRequestObject) (api.RotateWebhookSecretResponseObject, error) {
	svc, p, err := h.webhookCaller(ctx)
	if err != nil {
		return nil, err
	}
	e, secret, err := svc.RotateSecret(ctx, p, req.Id)
	if err != nil {
		return nil, err
	}
	return api.RotateWebhookSecret201JSONResponse(webhookWithSecretJSON(e, secret)), nil
}

// ListWebhookDeliveries pages through an endpoint's deliveries, newest first.
func (h *strictAPI) ListWebhookDeliveries(ctx context.Context, req api.ListWebhookDeliveriesRequestObject) (api.ListWebhookDeliveriesResponseObject, error) {
	svc, p, err := h.webhookCaller(ctx)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(req.Params.Limit)
	if err != nil {
		return nil, err
	}
	var after *webhooks.DeliveryKey
	if req.Params.Cursor != nil {
		at, id, err := decodeTimeIDCursor(*req.Params.Cursor)
		if err != nil {
			return nil, err
		}
		after = &webhooks.DeliveryKey{CreatedAt: at, ID: id}
	}
	ds, err := svc.Deliveries(ctx, p, req.Id, after, limit+1)
	if err != nil {
		return nil, err
	}
	list := api.WebhookDeliveryList{Items: make([]api.WebhookDelivery, 0, min(len(ds), limit))}
	for _, d := range ds[:min(len(ds), limit)] {
		list.Items = append(list.Items, deliveryJSON(d))
	}
	if len(ds) > limit {
		k := ds[limit-1].Key()
		next := encodeTimeIDCursor(k.CreatedAt, k.ID)
		list.NextCursor = &next
	}
	return api.ListWebhookDeliveries200JSONResponse(list), nil
}

// encodeTimeIDCursor makes a (created_at, id) list position opaque.
func encodeTimeIDCursor(at time.Time, id uuid.UUID) string {
	return encodeCursor(at.UTC().Format(time.RFC3339Nano) + " " + id.String())
}

// decodeTimeIDCursor reverses encodeTimeIDCursor.
func decodeTimeIDCursor(cursor string) (time.Time, uuid.UUID, error) {
	bad := &Error{Code: CodeInvalid, Detail: "the cursor was not issued by this API",
		Fields: []FieldError{{Field: "cursor", Message: "malformed cursor"}}}
	raw, err := decodeCursor(cursor)
	if err != nil {
		return time.Time{}, uuid.UUID{}, err
	}
	at, id, ok := strings.Cut(raw, " ")
	if !ok {
		return time.Time{}, uuid.UUID{}, bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, uuid.UUID{}, bad
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return time.Time{}, uuid.UUID{}, bad
	}
	return t, u, nil
}

// eventTypes converts the request's event types.
func eventTypes(ts []api.EventType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

// webhookJSON renders an endpoint; never its secret.
func webhookJSON(e webhooks.Endpoint) api.Webhook {
	w := api.Webhook{
		Id: e.ID, Url: e.URL, Status: api.WebhookStatus(e.Status), DisabledAt: utcPtr(e.DisabledAt),
		FailingSince: utcPtr(e.FailingSince), PreviousSecretUntil: utcPtr(e.PreviousSecretUntil),
		CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC(), EventTypes: make([]api.EventType, len(e.EventTypes)),
	}
	for i, t := range e.EventTypes {
		w.EventTypes[i] = api.EventType(t)
	}
	if e.DisabledReason != "" {
		r := api.WebhookDisabledReason(e.DisabledReason)
		w.DisabledReason = &r
	}
	return w
}

// webhookWithSecretJSON renders an endpoint with the secret shown once.
func webhookWithSecretJSON(e webhooks.Endpoint, secret string) api.WebhookWithSecret {
	w := webhookJSON(e)
	out := api.WebhookWithSecret{
		Id: w.Id, Url: w.Url, Status: api.WebhookWithSecretStatus(w.Status), DisabledAt: w.DisabledAt,
		FailingSince: w.FailingSince, PreviousSecretUntil: w.PreviousSecretUntil, CreatedAt: w.CreatedAt,
		UpdatedAt: w.UpdatedAt, EventTypes: w.EventTypes, Secret: secret,
	}
	if w.DisabledReason != nil {
		r := api.WebhookWithSecretDisabledReason(*w.DisabledReason)
		out.DisabledReason = &r
	}
	return out
}

// deliveryJSON renders a delivery with its attempts.
func deliveryJSON(d webhooks.Delivery) api.WebhookDelivery {
	out := api.WebhookDelivery{
		Id: d.ID, WebhookId: d.EndpointID, EventId: d.EventID, EventType: d.EventType,
		Status: api.WebhookDeliveryStatus(d.Status), NextAttemptAt: utcPtr(d.NextAttemptAt),
		CreatedAt: d.CreatedAt.UTC(), CompletedAt: utcPtr(d.CompletedAt), Attempts: make([]api.WebhookAttempt, len(d.Attempts)),
	}
	for i, a := range d.Attempts {
		w := api.WebhookAttempt{Attempt: a.Number, AttemptedAt: a.AttemptedAt.UTC(), LatencyMs: int(a.Latency.Milliseconds())}
		if a.StatusCode != 0 {
			code := a.StatusCode
			w.StatusCode = &code
		}
		if a.Error != "" {
			e := api.WebhookAttemptError(a.Error)
			w.Error = &e
		}
		out.Attempts[i] = w
	}
	return out
}
