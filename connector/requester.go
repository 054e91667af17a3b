package connector

import "context"

// AttributeRequester is implemented by a Gateway that can ask the platform for a
// device's attribute values (v1/gateway/attributes/request). It is optional so
// that the Gateway interface stays unchanged: a connector type-asserts it.
//
//	if r, ok := gw.(connector.AttributeRequester); ok {
//		values, err := r.RequestAttributes(ctx, "Device A", false, []string{"mode"})
//	}
type AttributeRequester interface {
	// RequestAttributes returns the values of keys of device (the name the
	// connector uses): shared attributes, or client attributes when client is
	// true. Keys the platform does not know are absent from the result; no keys
	// asks for every attribute of that scope. It returns when the platform
	// answered, or with an error when ctx is done or no answer came in time.
	RequestAttributes(ctx context.Context, device string, client bool, keys []string) (map[string]any, error)
}
