// Package bhttp implements Binary HTTP messages (RFC 9292), the plaintext
// that Oblivious HTTP (package ohttp) encrypts.
//
// A message starts with a framing indicator, a variable-length integer
// (RFC 9000 Section 16) that says whether it is a request or a response and
// whether it is known-length (0 request, 1 response) or indeterminate-length
// (2 request, 3 response):
//
//	Known-Length Request  { 0, Method, Scheme, Authority, Path,
//	                        Header Section, Content, Trailer Section, Padding }
//	Known-Length Response { 1, (Informational Status, Header Section)...,
//	                        Final Status, Header Section, Content,
//	                        Trailer Section, Padding }
//
// Method, Scheme, Authority and Path are length-prefixed strings; status
// codes are integers (100..199 informational, 200..599 final). A known-length
// field section is a length in bytes followed by field lines (length-prefixed
// name and value); content is length-prefixed. In the indeterminate-length
// framing a field section is ended by a zero in place of a name length, and
// content is a series of non-empty length-prefixed chunks ended by a zero.
// Padding is any number of zero bytes. A message may be truncated where its
// trailing parts would be empty: a missing header section, content or trailer
// section means an empty one.
//
// The decoder accepts both framings, informational responses, truncation and
// padding, validates field names and values as RFC 9292 Section 3.6 requires,
// and refuses what exceeds its [Limits]. Every error wraps one of the
// package's sentinel errors. The encoder writes the layout a message records
// in its [Layout] (known-length by default), so a decoded message re-encodes
// to the same bytes whenever the format allows.
package bhttp
