package admin

import "context"

// Tags returns the tags of vm (admin.vm.tag.List), sorted.
func (c *Client) Tags(ctx context.Context, vm string) ([]string, error) {
	return c.list(ctx, "admin.vm.tag.List", vm, "")
}

// HasTag reports whether vm has tag (admin.vm.tag.Get: "1" or "0").
func (c *Client) HasTag(ctx context.Context, vm, tag string) (bool, error) {
	body, err := c.Call(ctx, "admin.vm.tag.Get", vm, tag, nil)
	if err != nil {
		return false, err
	}
	return string(body) == "1", nil
}

// AddTag adds tag to vm (admin.vm.tag.Set); adding a tag vm already has
// is not an error.
func (c *Client) AddTag(ctx context.Context, vm, tag string) error {
	_, err := c.Call(ctx, "admin.vm.tag.Set", vm, tag, nil)
	return err
}

// RemoveTag removes tag from vm (admin.vm.tag.Remove). A tag vm does not
// have gives QubesTagNotFoundError.
func (c *Client) RemoveTag(ctx context.Context, vm, tag string) error {
	_, err := c.Call(ctx, "admin.vm.tag.Remove", vm, tag, nil)
	return err
}
