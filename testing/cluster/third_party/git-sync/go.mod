module k8s.io/git-sync

require (
	github.com/go-logr/logr v1.2.3
	github.com/golang-jwt/jwt/v4 v4.5.0
	github.com/prometheus/client_golang v1.14.0
	github.com/spf13/pflag v1.0.5
	go.uber.org/goleak v1.2.1
	golang.org/x/sys v0.0.0-20220520151302-bc2c85ada10a
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.1.2 // indirect
	github.com/golang/protobuf v1.5.2 // indirect
	github.com/matttproud/golang_protobuf_extensions v1.0.2-0.20181231171920-c182affec369 // indirect
	github.com/prometheus/client_model v0.3.0 // indirect
	github.com/prometheus/common v0.37.0 // indirect
	github.com/prometheus/procfs v0.8.0 // indirect
	google.golang.org/protobuf v1.33.0 // indirect
)

go 1.22
