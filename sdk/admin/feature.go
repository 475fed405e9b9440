package admin

import "context"

// Features returns the names of the features set on vm
// (admin.vm.feature.List), in the order they were set.
func (c *Client) Features(ctx context.Context, vm string) ([]string, error) {
	return c.list(ctx, "admin.vm.feature.List", vm, "")
}

// Feature returns the value of feature name of vm (admin.vm.feature.Get).
// "" means false. A feature that is not set gives QubesFeatureNotFoundError
// (IsNotFound reports true).
func (c *Client) Feature(ctx context.Context, vm, name string) (string, error) {
	return c.featureCall(ctx, "admin.vm.feature.Get", vm, name)
}

// SetFeature sets feature name of vm to value (admin.vm.feature.Set); ""
// means false.
func (c *Client) SetFeature(ctx context.Context, vm, name, value string) error {
	_, err := c.Call(ctx, "admin.vm.feature.Set", vm, name, []byte(value))
	return err
}

// RemoveFeature removes feature name of vm (admin.vm.feature.Remove). A
// feature that is not set gives QubesFeatureNotFoundError.
func (c *Client) RemoveFeature(ctx context.Context, vm, name string) error {
	_, err := c.Call(ctx, "admin.vm.feature.Remove", vm, name, nil)
	return err
}

// CheckFeatureWithTemplate returns feature name of vm, or of its template
// if vm does not have it (admin.vm.feature.CheckWithTemplate).
func (c *Client) CheckFeatureWithTemplate(ctx context.Context, vm, name string) (string, error) {
	return c.featureCall(ctx, "admin.vm.feature.CheckWithTemplate", vm, name)
}

// CheckFeatureWithNetvm returns feature name of vm, or of its netvm chain
// (admin.vm.feature.CheckWithNetvm).
func (c *Client) CheckFeatureWithNetvm(ctx context.Context, vm, name string) (string, error) {
	return c.featureCall(ctx, "admin.vm.feature.CheckWithNetvm", vm, name)
}

// CheckFeatureWithAdminVM returns feature name of vm, or of dom0
// (admin.vm.feature.CheckWithAdminVM).
func (c *Client) CheckFeatureWithAdminVM(ctx context.Context, vm, name string) (string, error) {
	return c.featureCall(ctx, "admin.vm.feature.CheckWithAdminVM", vm, name)
}

// CheckFeatureWithTemplateAndAdminVM returns feature name of vm, of its
// template, or of dom0 (admin.vm.feature.CheckWithTemplateAndAdminVM).
func (c *Client) CheckFeatureWithTemplateAndAdminVM(ctx context.Context, vm, name string) (string, error) {
	return c.featureCall(ctx, "admin.vm.feature.CheckWithTemplateAndAdminVM", vm, name)
}

func (c *Client) featureCall(ctx context.Context, method, vm, name string) (string, error) {
	body, err := c.Call(ctx, method, vm, name, nil)
	return string(body), err
}
