package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Labels returns the names of the labels (admin.label.List), in index
// order.
func (c *Client) Labels(ctx context.Context) ([]string, error) {
	return c.list(ctx, "admin.label.List", AdminVM, "")
}

// LabelColor returns the colour of label, e.g. "0xcc0000"
// (admin.label.Get).
func (c *Client) LabelColor(ctx context.Context, label string) (string, error) {
	body, err := c.Call(ctx, "admin.label.Get", AdminVM, label, nil)
	return string(body), err
}

// LabelIndex returns the index of label (admin.label.Index).
func (c *Client) LabelIndex(ctx context.Context, label string) (int, error) {
	body, err := c.Call(ctx, "admin.label.Index", AdminVM, label, nil)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(body)))
	if err != nil {
		return 0, fmt.Errorf("admin.label.Index: %w: %q", ErrMalformedReply, body)
	}
	return n, nil
}
