// Package apitest calls every exported method of a value by reflection, so
// that a test of what the methods do in some state (after Close, say)
// covers the methods added after the test was written.
package apitest

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"
)

// Call is the outcome of one method call.
type Call struct {
	Name   string
	HasErr bool  // the method's last result is an error
	Err    error // that error
	Panic  any   // what the call panicked with, nil if it returned
}

func (c Call) String() string {
	if c.Panic != nil {
		return fmt.Sprintf("%s panicked: %v", c.Name, c.Panic)
	}
	return fmt.Sprintf("%s: %v", c.Name, c.Err)
}

var errType = reflect.TypeFor[error]()

// CallAll calls each exported method of v in turn, with arguments made by
// Arg, and fails the test if one does not return within timeout. A
// result that is an iterator (a func taking a yield func) is ranged to its
// end, and a result that is an io.Closer is closed, so that the work they
// stand for is done too.
func CallAll(t testing.TB, v any, timeout time.Duration) []Call {
	t.Helper()
	var calls []Call
	for _, m := range Methods(v) {
		done := make(chan Call, 1)
		go func() { done <- m.Call() }()
		select {
		case c := <-done:
			calls = append(calls, c)
		case <-time.After(timeout):
			t.Fatalf("%T.%s did not return within %v", v, m.Name, timeout)
		}
	}
	return calls
}

// Method is one exported method of a value.
type Method struct {
	Name string
	// Call calls it as CallAll does, without a timeout.
	Call func() Call
}

// Methods lists the exported methods of v.
func Methods(v any) []Method {
	rv := reflect.ValueOf(v)
	ms := make([]Method, rv.NumMethod())
	for i := range ms {
		name := rv.Type().Method(i).Name
		ms[i] = Method{Name: name, Call: func() Call { return call(name, rv.Method(i)) }}
	}
	return ms
}

// call calls one method, recovering a panic.
func call(name string, m reflect.Value) (c Call) {
	c.Name = name
	defer func() { c.Panic = recover() }()
	mt := m.Type()
	args := make([]reflect.Value, mt.NumIn())
	for i := range args {
		args[i] = Arg(mt.In(i))
	}
	out := m.Call(args)
	for _, o := range out {
		finish(o)
	}
	if n := len(out); n > 0 && mt.Out(n-1) == errType {
		c.HasErr = true
		c.Err, _ = out[n-1].Interface().(error)
	}
	return c
}

// finish ranges an iterator to its end and closes a Closer.
func finish(o reflect.Value) {
	if o.Kind() == reflect.Func && !o.IsNil() && o.Type().NumIn() == 1 && o.Type().In(0).Kind() == reflect.Func {
		o.Call([]reflect.Value{Arg(o.Type().In(0))})
		return
	}
	if c, ok := o.Interface().(io.Closer); ok && !isNil(o) {
		c.Close()
	}
}

func isNil(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer, reflect.Func, reflect.Map, reflect.Slice, reflect.Chan:
		return v.IsNil()
	}
	return false
}

// Arg returns a valid, ordinary value of type t: 1 for an integer, "c" for
// a string, a one-byte record, a batch of one, context.Background(), a
// function that returns true where it returns a bool (a yield that goes
// on) and zero values otherwise (nil errors).
func Arg(t reflect.Type) reflect.Value {
	switch {
	case t == reflect.TypeFor[context.Context]():
		return reflect.ValueOf(context.Background())
	case t == reflect.TypeFor[[]byte]():
		return reflect.ValueOf([]byte("x"))
	case t == reflect.TypeFor[[][]byte]():
		return reflect.ValueOf([][]byte{[]byte("x")})
	}
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.String:
		v.SetString("c")
	case reflect.Func:
		v = reflect.MakeFunc(t, func([]reflect.Value) []reflect.Value {
			out := make([]reflect.Value, t.NumOut())
			for i := range out {
				out[i] = reflect.New(t.Out(i)).Elem()
				if t.Out(i).Kind() == reflect.Bool {
					out[i].SetBool(true)
				}
			}
			return out
		})
	}
	return v
}
