module github.com/qubesgo/qubesd/sdk

go 1.26
