package raftstore
